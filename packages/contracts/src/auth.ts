import { z } from 'zod';
import { Timestamp } from './common.ts';

export const Role = z.enum(['admin', 'user']);
export type Role = z.infer<typeof Role>;

export const Email = z.email().trim().toLowerCase().max(254);
/** 8..200: long passphrases welcome; the cap keeps the hash cheap to refuse. */
export const Password = z.string().min(8).max(200);
export const PersonName = z.string().trim().min(1).max(100);

export const SetupStatus = z.object({ needs_setup: z.boolean(), allow_registration: z.boolean() });
export const SetupBody = z.object({ email: Email, name: PersonName, password: Password });
export const LoginBody = z.object({ email: Email, password: z.string().min(1).max(200) });
export const RegisterBody = SetupBody;
export const ChangePasswordBody = z.object({ current_password: z.string().min(1).max(200), new_password: Password });

export const User = z.object({
  id: z.string(),
  email: z.string(),
  name: z.string(),
  role: Role,
  created_at: Timestamp,
});
export type User = z.infer<typeof User>;

export const CreateUserBody = z.object({ email: Email, name: PersonName, password: Password, role: Role.default('user') });
export const UpdateUserBody = z
  .object({ name: PersonName, password: Password, role: Role })
  .partial()
  .refine((b) => Object.keys(b).length > 0, { message: 'Nothing to update' });

export const CreateTokenBody = z.object({ name: z.string().trim().min(1).max(100).default('API token') });
export const ApiToken = z.object({
  id: z.string(),
  name: z.string(),
  prefix: z.string(),
  created_at: Timestamp,
  last_used_at: Timestamp.nullable(),
});
export type ApiToken = z.infer<typeof ApiToken>;
export const CreatedToken = ApiToken.extend({ token: z.string() });

export const Settings = z.object({ allow_registration: z.boolean() });
export const UpdateSettingsBody = Settings.partial();

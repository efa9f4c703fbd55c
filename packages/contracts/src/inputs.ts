import type { z } from 'zod';
import type { ChangePasswordBody, CreateTokenBody, CreateUserBody, LoginBody, RegisterBody, SetupBody, UpdateSettingsBody, UpdateUserBody } from './auth.ts';
import type { AddMemberBody, CreateProjectBody, Member, MemberAdded, UpdateMemberBody, UpdateProjectBody } from './projects.ts';
import type { CreateProviderBody, ProviderHealth, ProviderTestResult, ProviderUsage, UpdateProviderBody, UsageDay } from './providers.ts';
import type { RunError, StartRunBody } from './runs.ts';
import type { CreateShotBody, StoryboardInput, UpdateMovementBody, UpdateShotBody } from './stages.ts';
import type { SetupStatus, Settings, CreatedToken } from './auth.ts';

/**
 * Request bodies as a client writes them (`z.input`: defaults optional) and the response shapes that
 * had no exported type, so the web app imports every shape from here instead of restating it.
 */
export type SetupInput = z.input<typeof SetupBody>;
export type LoginInput = z.input<typeof LoginBody>;
export type RegisterInput = z.input<typeof RegisterBody>;
export type ChangePasswordInput = z.input<typeof ChangePasswordBody>;
export type CreateUserInput = z.input<typeof CreateUserBody>;
export type UpdateUserInput = z.input<typeof UpdateUserBody>;
export type CreateTokenInput = z.input<typeof CreateTokenBody>;
export type UpdateSettingsInput = z.input<typeof UpdateSettingsBody>;
export type CreateProjectInput = z.input<typeof CreateProjectBody>;
export type UpdateProjectInput = z.input<typeof UpdateProjectBody>;
export type CreateProviderInput = z.input<typeof CreateProviderBody>;
export type UpdateProviderInput = z.input<typeof UpdateProviderBody>;
export type StartRunInput = z.input<typeof StartRunBody>;
export type StoryboardRunInput = z.input<typeof StoryboardInput>;
export type CreateShotInput = z.input<typeof CreateShotBody>;
export type UpdateShotInput = z.input<typeof UpdateShotBody>;
export type UpdateMovementInput = z.input<typeof UpdateMovementBody>;
export type AddMemberInput = z.input<typeof AddMemberBody>;
export type UpdateMemberInput = z.input<typeof UpdateMemberBody>;

export type SetupStatusResponse = z.infer<typeof SetupStatus>;
export type SettingsResponse = z.infer<typeof Settings>;
export type CreatedTokenResponse = z.infer<typeof CreatedToken>;
export type ProviderHealthResponse = z.infer<typeof ProviderHealth>;
export type ProviderTestResponse = z.infer<typeof ProviderTestResult>;
export type ProviderUsageResponse = z.infer<typeof ProviderUsage>;
export type UsageDayResponse = z.infer<typeof UsageDay>;
export type RunErrorResponse = z.infer<typeof RunError>;
export type MemberResponse = z.infer<typeof Member>;
export type MemberAddedResponse = z.infer<typeof MemberAdded>;

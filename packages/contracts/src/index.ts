export * from './common.ts';
export * from './stages.ts';
export * from './auth.ts';
export * from './projects.ts';
export * from './providers.ts';
export * from './runs.ts';
export * from './inputs.ts';
export * from './prompts.ts';

/**
 * The simulated OpenAI-compatible upstream: deterministic answers, tunable speed, and on request
 * every misbehaviour of real providers (see knobs.ts for the list and how to select them).
 */
export { createFakeLlmHandler, type FakeLlmHandler, type FakeLlmOptions, type FakeLlmStats, type RequestEndInfo } from './handler.ts';
export { startFakeLlm, type FakeLlmServer, type StartOptions } from './server.ts';
export { expectedText, expectedTokens, expectedReasoning, type ChatRequest, type ExpectOptions } from './answer.ts';
export { QUIRKS, DEFAULT_KNOBS, type Quirk, type Knobs, type KnobInput } from './knobs.ts';
export { MOVEMENT_TYPES, type Shot, type Movement, type MovementType } from './json-output.ts';

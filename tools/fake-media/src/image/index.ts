/**
 * The simulated text-to-image vendors (OpenAI shape, SiliconFlow shape, DashScope async tasks), with
 * knobs for latency, 429, moderation refusals, tasks failing mid-poll, expiring URLs and wrong content.
 */
export { createFakeImageHandler, type CreateRequest, type FakeImageHandler, type FakeImageOptions, type FakeImageStats, type ImageRoute, type ReceivedReference, type ServedImage } from './handler.ts';
export { startFakeImage, type FakeImageServer, type StartFakeImageOptions } from './server.ts';
export { DEFAULT_IMAGE_KNOBS, type ImageKnobs, type ImageKnobInput } from './knobs.ts';
export { pictureFor } from './picture.ts';

import { availableParallelism } from 'node:os';
import { describe, expect, test } from 'vitest';
import { ConfigError, loadConfig } from './config.ts';
import { defaultPoolSize } from './db/client.ts';

const base = { APP_SECRET: 'x'.repeat(32) };

describe('media settings in the configuration', () => {
  test('MEDIA_CONCURRENCY defaults to cores − 1, at least 1, and takes a given whole number', () => {
    expect(loadConfig(base).mediaConcurrency).toBe(Math.max(1, availableParallelism() - 1));
    expect(loadConfig({ ...base, MEDIA_CONCURRENCY: '3' }).mediaConcurrency).toBe(3);
  });

  test.each(['0', '-2', '1.5', 'lots', '65'])('MEDIA_CONCURRENCY=%s stops start-up naming the variable', (value) => {
    expect(() => loadConfig({ ...base, MEDIA_CONCURRENCY: value })).toThrow(ConfigError);
    expect(() => loadConfig({ ...base, MEDIA_CONCURRENCY: value })).toThrow(/^Invalid MEDIA_CONCURRENCY: /);
  });

  test('an FFMPEG_PATH or FFPROBE_PATH that is not an executable stops start-up naming it', () => {
    expect(() => loadConfig({ ...base, FFMPEG_PATH: '/nonexistent/ffmpeg' })).toThrow(/^Invalid FFMPEG_PATH: /);
    expect(() => loadConfig({ ...base, FFPROBE_PATH: '/nonexistent/ffprobe' })).toThrow(/^Invalid FFPROBE_PATH: /);
    expect(loadConfig({ ...base, FFMPEG_PATH: '/usr/bin/ffmpeg' }).mediaTools.FFMPEG_PATH).toBe('/usr/bin/ffmpeg');
  });
});

describe('the instance lease in the configuration', () => {
  test('INSTANCE_LEASE_S defaults to 30 s and takes seconds, fractions included', () => {
    expect(loadConfig(base).instanceLeaseMs).toBe(30_000);
    expect(loadConfig({ ...base, INSTANCE_LEASE_S: '2.5' }).instanceLeaseMs).toBe(2_500);
  });

  test.each(['0', '-1', 'soon', '3601'])('INSTANCE_LEASE_S=%s stops start-up naming the variable', (value) => {
    expect(() => loadConfig({ ...base, INSTANCE_LEASE_S: value })).toThrow(/^Invalid INSTANCE_LEASE_S: /);
  });
});

describe('TRUST_PROXY', () => {
  test.each([
    [undefined, false],
    ['true', true],
    ['false', false],
    ['10.0.0.1', ['10.0.0.1']],
    ['127.0.0.1, 10.0.0.0/8,::1', ['127.0.0.1', '10.0.0.0/8', '::1']],
  ])('TRUST_PROXY=%s is trustProxy %j', (value, expected) => {
    expect(loadConfig({ ...base, TRUST_PROXY: value }).trustProxy).toEqual(expected);
  });

  test.each(['yes', 'nginx', '1', '10.0.0.0/33', '1.2.3.4/8/1'])('TRUST_PROXY=%s stops start-up naming the variable', (value) => {
    expect(() => loadConfig({ ...base, TRUST_PROXY: value })).toThrow(/^Invalid TRUST_PROXY: /);
  });
});

describe('METRICS_TOKEN', () => {
  test('unset, there are no metrics to serve; set, it is the scraper\'s token', () => {
    expect(loadConfig(base).metricsToken).toBeUndefined();
    expect(loadConfig({ ...base, METRICS_TOKEN: 'a-long-scraper-token-0123' }).metricsToken).toBe('a-long-scraper-token-0123');
  });

  test.each(['short', 'has a space in it, long enough', 'ünïcödé-token-long-enough'])('METRICS_TOKEN=%s stops start-up naming the variable', (value) => {
    expect(() => loadConfig({ ...base, METRICS_TOKEN: value })).toThrow(/^Invalid METRICS_TOKEN: /);
  });
});

describe('DATABASE_POOL_SIZE', () => {
  test("DATABASE_POOL_SIZE is left to the database client's default (twice the cores, at least 4) unless given a whole number from 1 to 100", () => {
    expect(loadConfig(base).poolSize).toBeUndefined();
    expect(defaultPoolSize()).toBe(Math.max(4, 2 * availableParallelism()));
    expect(loadConfig({ ...base, DATABASE_POOL_SIZE: '6' }).poolSize).toBe(6);
    for (const value of ['0', '1.5', 'many', '101']) expect(() => loadConfig({ ...base, DATABASE_POOL_SIZE: value })).toThrow(/^Invalid DATABASE_POOL_SIZE: must be a whole number from 1 to 100/);
  });
});

describe('where runs execute', () => {
  const shared = { REDIS_URL: 'redis://127.0.0.1:6379', DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/x' };
  test('RUNS_IN defaults to here; workers is taken with REDIS_URL and DATABASE_URL', () => {
    expect(loadConfig(base).runsIn).toBe('here');
    expect(loadConfig({ ...base, ...shared, RUNS_IN: 'workers', WORKER_CONCURRENCY: '4' })).toMatchObject({ runsIn: 'workers', workerConcurrency: 4 });
  });

  test('RUNS_IN=workers without Redis or PostgreSQL, or an unknown value, stops start-up naming it', () => {
    expect(() => loadConfig({ ...base, RUNS_IN: 'workers', DATABASE_URL: shared.DATABASE_URL })).toThrow(/^Invalid RUNS_IN: workers needs REDIS_URL and DATABASE_URL/);
    expect(() => loadConfig({ ...base, RUNS_IN: 'workers', REDIS_URL: shared.REDIS_URL })).toThrow(/^Invalid RUNS_IN: /);
    expect(() => loadConfig({ ...base, RUNS_IN: 'elsewhere' })).toThrow(/^Invalid RUNS_IN: must be here or workers/);
    expect(() => loadConfig({ ...base, ...shared, RUNS_IN: 'workers', WORKER_CONCURRENCY: '0' })).toThrow(/^Invalid WORKER_CONCURRENCY: /);
  });
});

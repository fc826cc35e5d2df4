import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { upcomingLeadMinutes } from '../../src/notify/index.js';

const JOB = `
jobs:
  - name: qa
    notify: [chat, hooks]
    source: { host: db.example.com, user: replicator }
    target: { kind: local, dataDir: /srv/qa, port: 5433 }
  - name: reports
    notify: [hooks]
    source: { host: db.example.com, user: replicator }
    target: { kind: local, dataDir: /srv/reports, port: 5434 }
`;

const env = { CHAT_URL: 'https://hooks.slack.com/services/T/B/abc', HOOK_URL: 'https://example.com/hook', HOOK_SECRET: 's3cret' };

function load(notifications: string) {
  return parseConfig(`notifications:\n${notifications}${JOB}`, { source: 'test.yaml', baseDir: '/etc/db-refresher', env });
}

function problems(notifications: string): string[] {
  try {
    load(notifications);
  } catch (error) {
    if (error instanceof ConfigError) return [...error.problems];
    throw error;
  }
  return [];
}

describe('notifications config', () => {
  it('defaults: the five run events, 30 minutes lead time; secrets are Secret values', () => {
    const config = load(`
  chat: { kind: slack, url: { env: CHAT_URL } }
  hooks: { kind: generic, url: { env: HOOK_URL }, secret: { env: HOOK_SECRET }, events: [failed, upcoming], upcomingLeadMinutes: 90 }
`);
    expect(config.notifications.chat?.events).toEqual(['queued', 'started', 'succeeded', 'failed', 'skipped']);
    expect(config.notifications.chat?.upcomingLeadMinutes).toBe(30);
    expect(config.notifications.hooks?.upcomingLeadMinutes).toBe(90);
    expect(config.notifications.hooks?.url.reveal()).toBe(env.HOOK_URL);
    expect(JSON.stringify(config.notifications)).not.toContain('s3cret');
    expect(JSON.stringify(config.notifications)).not.toContain('hooks.slack.com');
    expect(upcomingLeadMinutes(config, 'qa')).toEqual([90]);
    expect(upcomingLeadMinutes(config, 'nope')).toEqual([]);
  });

  it('rejects a signing secret on a slack or teams target, unknown events and silly lead times', () => {
    const found = problems(`
  chat: { kind: slack, url: { env: CHAT_URL }, secret: { env: HOOK_SECRET } }
  team: { kind: teams, url: { env: CHAT_URL }, secret: { env: HOOK_SECRET } }
  hooks: { kind: generic, url: { env: HOOK_URL }, events: [exploded], upcomingLeadMinutes: 0 }
`);
    expect(found.join('\n')).toContain('notifications.chat.secret: a signing secret is used by kind: generic only');
    expect(found.join('\n')).toContain('notifications.team.secret: a signing secret is used by kind: generic only');
    expect(found.join('\n')).toContain('notifications.hooks.events[0]');
    expect(found.join('\n')).toContain('notifications.hooks.upcomingLeadMinutes: must be at least 1 minute');
  });

  it('an inline URL is refused: webhook URLs are secrets', () => {
    const found = problems(`
  chat: { kind: slack, url: https://hooks.slack.com/services/T/B/abc }
  hooks: { kind: generic, url: { env: HOOK_URL } }
`);
    expect(found.join('\n')).toContain('notifications.chat.url: inline secrets are not allowed');
    expect(found.join('\n')).not.toContain('hooks.slack.com/services');
  });
});

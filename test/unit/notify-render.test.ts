import * as AdaptiveCards from 'adaptivecards';
import { describe, expect, it } from 'vitest';
import { genericEnvelopeJsonSchema, genericEnvelopeSchema, renderGeneric } from '../../src/notify/render/generic.js';
import {
  downtimeOf,
  type MessageFacts,
  runFacts,
  runUrl,
  skippedFacts,
  testFacts,
  upcomingFacts,
} from '../../src/notify/render/message.js';
import { renderSlack, SLACK_COLORS, SLACK_LIMITS, type SlackPayload } from '../../src/notify/render/slack.js';
import { type AdaptiveCard, renderTeams, TEAMS_LIMITS, type TeamsElement, type TeamsPayload } from '../../src/notify/render/teams.js';
import { ELLIPSIS, escapeSlack, truncate } from '../../src/notify/render/text.js';
import type { RunRecord } from '../../src/run/record.js';
import {
  at,
  failedInClone,
  failedInPreflight,
  interruptedInClone,
  JOB,
  MANUAL,
  started,
  succeeded,
  T0,
  TARGET,
} from '../fixtures/notify/samples.js';

const PUBLIC_URL = 'https://db-refresher.example.com/';
const target = { kind: TARGET.kind, summary: TARGET.summary };

function fromRun(event: 'queued' | 'started' | 'succeeded' | 'failed', run: RunRecord): MessageFacts {
  return runFacts({ event, run, job: JOB, publicUrl: PUBLIC_URL, now: at(999) });
}

/** Every event the formats render, from fixed inputs and a fixed clock. */
const CASES: Record<string, () => MessageFacts> = {
  queued: () => {
    const { startedAt: _startedAt, ...run } = started();
    return fromRun('queued', { ...run, status: 'queued' });
  },
  started: () => fromRun('started', started()),
  'started-manual': () => fromRun('started', started(MANUAL)),
  succeeded: () => fromRun('succeeded', succeeded()),
  'failed-preflight': () => fromRun('failed', failedInPreflight()),
  'failed-clone': () => fromRun('failed', failedInClone()),
  interrupted: () => fromRun('failed', interruptedInClone()),
  'skipped-overlap': () =>
    skippedFacts({
      job: JOB,
      target,
      reason: 'overlap',
      scheduledFor: T0.toISOString(),
      detail: 'run 20250105T010000000Z-ffffff is still in clone',
      now: T0,
    }),
  'skipped-suspended': () => skippedFacts({ job: JOB, target, reason: 'suspended', scheduledFor: T0.toISOString(), now: T0 }),
  'skipped-missed': () =>
    skippedFacts({ job: JOB, target, reason: 'missed', scheduledFor: T0.toISOString(), now: new Date('2025-01-05T09:00:00.000Z') }),
  upcoming: () => upcomingFacts({ job: JOB, target, at: T0.toISOString(), leadMinutes: 30, now: at(-30 * 60) }),
  test: () => testFacts({ notificationTarget: 'team-chat', job: JOB, target, id: 'test.fixed', now: T0 }),
};

function slackSizesOk(payload: SlackPayload): void {
  expect(payload.text.length).toBeLessThanOrEqual(SLACK_LIMITS.text);
  expect(payload.blocks.length).toBeLessThanOrEqual(SLACK_LIMITS.blocks);
  for (const block of payload.blocks) {
    if (block.type === 'header') expect(block.text.text.length).toBeLessThanOrEqual(SLACK_LIMITS.header);
    if (block.type === 'section' && 'text' in block) expect(block.text.text.length).toBeLessThanOrEqual(SLACK_LIMITS.sectionText);
    if (block.type === 'section' && 'fields' in block) {
      expect(block.fields.length).toBeLessThanOrEqual(SLACK_LIMITS.fields);
      for (const field of block.fields) expect(field.text.length).toBeLessThanOrEqual(SLACK_LIMITS.field);
    }
  }
  expect(payload.attachments).toHaveLength(1);
}

/**
 * What Microsoft's own Adaptive Cards library (the renderer Teams builds on) says about a card:
 * unknown element types and bad values while parsing, missing required properties when validating,
 * and elements it would drop.
 */
function adaptiveCardProblems(card: AdaptiveCard): string[] {
  const parsed = new AdaptiveCards.AdaptiveCard();
  const context = new AdaptiveCards.SerializationContext();
  parsed.parse(card, context);
  const problems = Array.from({ length: context.eventCount }, (_, i) => context.getEventAt(i).message);
  problems.push(...parsed.validateProperties().validationEvents.map((e) => e.message));
  const kept = (parsed.toJSON() as { body?: unknown[] } | undefined)?.body?.length ?? 0;
  if (kept !== card.body.length) problems.push(`the library kept ${kept} of ${card.body.length} body elements`);
  return problems;
}

function teamsCard(payload: TeamsPayload): AdaptiveCard {
  return payload.attachments[0].content;
}

/** Every text run in the card, depth first. */
function textRuns(elements: readonly TeamsElement[]): string[] {
  return elements.flatMap((e): string[] => {
    if (e.type === 'RichTextBlock') return e.inlines.map((i) => i.text);
    if (e.type === 'Container') return textRuns(e.items);
    return e.columns.flatMap((c) => textRuns(c.items));
  });
}

describe('notification payloads', () => {
  for (const [name, build] of Object.entries(CASES)) {
    it(`slack: ${name}`, async () => {
      const payload = renderSlack(build());
      slackSizesOk(payload);
      await expect(`${JSON.stringify(payload, null, 2)}\n`).toMatchFileSnapshot(`../fixtures/notify/${name}.slack.json`);
    });

    it(`teams: ${name}`, async () => {
      const payload = renderTeams(build());
      expect(adaptiveCardProblems(teamsCard(payload))).toEqual([]);
      expect(Buffer.byteLength(JSON.stringify(payload))).toBeLessThanOrEqual(TEAMS_LIMITS.bytes);
      await expect(`${JSON.stringify(payload, null, 2)}\n`).toMatchFileSnapshot(`../fixtures/notify/${name}.teams.json`);
    });

    it(`generic: ${name}`, async () => {
      const envelope = renderGeneric(build());
      // The envelope satisfies the schema the JSON Schema file is generated from.
      expect(genericEnvelopeSchema.safeParse(envelope).error).toBeUndefined();
      await expect(`${JSON.stringify(envelope, null, 2)}\n`).toMatchFileSnapshot(`../fixtures/notify/${name}.generic.json`);
    });
  }

  it('the published JSON Schema is the one generated from the envelope schema', async () => {
    await expect(`${JSON.stringify(genericEnvelopeJsonSchema(), null, 2)}\n`).toMatchFileSnapshot(
      '../../src/notify/generic-envelope.schema.json',
    );
  });

  it('the schema rejects envelopes that break the contract', () => {
    const good = renderGeneric(CASES.succeeded?.() as MessageFacts);
    expect(genericEnvelopeSchema.safeParse({ ...good, event: 'exploded' }).success).toBe(false);
    expect(genericEnvelopeSchema.safeParse({ ...good, run: { ...good.run, durationMs: -1 } }).success).toBe(false);
    const { error: _error, ...missing } = good;
    expect(genericEnvelopeSchema.safeParse(missing).success).toBe(false);
    // Receivers must accept fields added later in the same schemaVersion.
    expect(genericEnvelopeSchema.safeParse({ ...good, addedLater: 1 }).success).toBe(true);
  });
});

describe('what a message says', () => {
  it('a masked refresh: how many columns in how many tables, and the coverage result', () => {
    const base = succeeded();
    const masking = { databases: [], tables: 3, columns: 9, rows: 6000, parallel: 3, sessionSettings: [] };
    const coverage = { mode: 'warn' as const, ok: false, columns: 40, tables: 6, queries: 2, durationMs: 30, findings: [] };
    const finding = {
      database: 'app',
      table: 'public.leads',
      column: 'contact',
      rules: ['values:email'],
      sampled: 20,
      matched: 20,
      evidence: '',
    };
    const run: RunRecord = {
      ...base,
      masking,
      ...(base.verification ? { verification: { ...base.verification, coverage: { ...coverage, findings: [finding, finding] } } } : {}),
    };
    const facts = fromRun('succeeded', run);
    expect(facts.masking).toBe('masked 9 columns in 3 tables; coverage: 2 findings');
    expect(renderSlack(facts).text).toContain('Masking: masked 9 columns in 3 tables; coverage: 2 findings');
    expect(renderGeneric(facts).masking).toBe('masked 9 columns in 3 tables; coverage: 2 findings');
    expect(JSON.stringify(renderTeams(facts))).toContain('masked 9 columns in 3 tables');
    expect(fromRun('succeeded', succeeded()).masking).toBeUndefined();
  });

  it('a success: job, target, trigger, duration, downtime, figures against the source, link', () => {
    const slack = renderSlack(fromRun('succeeded', succeeded()));
    expect(slack.text).toContain('qa refreshed in 3 min 30 s');
    expect(slack.text).toContain('Target: local data directory /var/lib/db-refresher/qa, served on 127.0.0.1:5433');
    expect(slack.text).toContain('Trigger: schedule 0 3 * * 0 (Europe/Berlin), run due 2025-01-05 03:00 Europe/Berlin');
    // Downtime runs from teardown start (3 s) to open end (206 s).
    expect(slack.text).toContain('Downtime: 3 min 23 s');
    expect(slack.text).toContain('• app: 5 tables (source 5), 1.2 GiB (source 1.2 GiB)');
    expect(slack.text).toContain('https://db-refresher.example.com/api/v1/runs/20250105T020000000Z-a1b2c3');
    expect(slack.attachments[0]?.color).toBe(SLACK_COLORS.succeeded);
  });

  it('a failure: the phase, the class, the message and the hint', () => {
    const facts = fromRun('failed', failedInPreflight());
    const slack = renderSlack(facts);
    expect(facts.title).toBe('Refresh of qa failed in preflight: wal-senders-exhausted');
    expect(slack.text).toContain('source has max_wal_senders=2 and 2 in use: raise max_wal_senders or retry later');
    expect(slack.text).toContain(`What to do: ${facts.error?.hint}`);
    expect(slack.text).toContain('Trigger: manually by alice (command line): fresh data for the release test');
    expect(slack.attachments[0]?.color).toBe(SLACK_COLORS.failed);
    const generic = renderGeneric(facts);
    expect(generic.error).toMatchObject({ phase: 'preflight', class: 'wal-senders-exhausted' });
    expect(generic.run?.downtimeMs).toBeNull();
    expect(generic.run?.targetDown).toBe(false);
  });

  it('a failure after teardown says the target is down, and downtime runs to the end of the run', () => {
    const run = failedInClone();
    expect(downtimeOf(run)).toEqual({ downtimeMs: 92_000, targetDown: true });
    const slack = renderSlack(fromRun('failed', run));
    expect(slack.text).toContain('no new copy is running');
    expect(slack.attachments[0]?.text).toContain('target has no running copy');
    // Source figures only: the run stopped before verification.
    expect(renderGeneric(fromRun('failed', run)).verification?.ok).toBeNull();
  });

  it('escapes what people typed, so a reason cannot mention @channel or forge a link', () => {
    const run = started({ kind: 'http', by: 'mallory', reason: '<!channel> see <https://evil.example|here> & more' });
    const slack = renderSlack(fromRun('started', run));
    const all = JSON.stringify(slack);
    expect(all).not.toContain('<!channel>');
    expect(all).not.toContain('<https://evil.example');
    expect(slack.text).toContain('&lt;!channel&gt; see &lt;https://evil.example|here&gt; &amp; more');
  });

  it('links to the run only when publicUrl is set, with or without a trailing slash', () => {
    expect(runUrl(undefined, 'r1')).toBeUndefined();
    expect(runUrl('https://x.example', 'r1')).toBe('https://x.example/api/v1/runs/r1');
    expect(runUrl('https://x.example/base/', 'r1')).toBe('https://x.example/base/api/v1/runs/r1');
    const facts = runFacts({ event: 'succeeded', run: succeeded(), job: JOB, now: T0 });
    expect(renderGeneric(facts).run?.url).toBeNull();
    expect(JSON.stringify(renderSlack(facts))).not.toContain('/api/v1/runs/');
  });

  it('a resumed run says so, with its own delivery id and time', () => {
    const first = fromRun('started', started());
    const resumedAt = at(600).toISOString();
    const run: RunRecord = { ...started(), resumed: [{ at: resumedAt, fromPhase: 'verify' }] };
    const facts = fromRun('started', run);
    expect(facts.title).toBe('Refresh of qa resumed at verify after the service restarted');
    expect(facts.occurredAt).toBe(resumedAt);
    expect(facts.id).not.toBe(first.id);
    expect(fromRun('started', { ...run, resumed: [...(run.resumed ?? []), { at: resumedAt, fromPhase: 'verify' }] }).id).not.toBe(facts.id);
    expect(renderSlack(facts).text).toContain('resumed at verify');
  });

  it('marks dry runs', () => {
    const run = { ...started(), dryRun: true };
    expect(fromRun('started', run).title).toBe('Refresh of qa started (dry run)');
  });
});

/** A failure with everything too long: a 120 kB error message (ending in an open code block), 400 databases, a 5000-character reason. */
function hugeFailedRun(): RunRecord {
  const huge = failedInPreflight();
  const many = Array.from({ length: 400 }, (_, i) => ({
    database: `database_${i}`,
    sizeBytes: i * 1000,
    owner: 'o',
    tablesBySchema: { public: i },
  }));
  return {
    ...huge,
    error: { ...(huge.error as NonNullable<RunRecord['error']>), message: `${'no space left on device '.repeat(5000)}\`\`\`tail` },
    snapshot: { takenAt: T0.toISOString(), databases: many },
    trigger: { kind: 'cli', by: 'alice', reason: 'r'.repeat(5000) },
  };
}

describe('Teams', () => {
  it('says what Slack says: title, facts, the failure and its hint, figures, a link to the run', () => {
    const facts = fromRun('failed', failedInClone());
    const card = teamsCard(renderTeams(facts));
    const texts = textRuns(card.body);
    expect(texts[0]).toBe(`❌ ${facts.title}`);
    expect(texts).toContain('Target');
    expect(texts).toContain(facts.target.summary);
    expect(texts).toContain(facts.error?.message);
    expect(texts).toContain(facts.error?.hint);
    expect(texts.some((t) => t.includes('no new copy is running'))).toBe(true);
    expect(card.actions).toEqual([{ type: 'Action.OpenUrl', title: 'Open the run record', url: facts.run?.url }]);
    expect(card.body[0]).toMatchObject({ type: 'Container', style: 'attention' });
    expect(teamsCard(renderTeams(fromRun('succeeded', succeeded()))).body[0]).toMatchObject({ style: 'good' });
  });

  it('shows what people typed as plain text runs, never as Markdown that could forge a link', () => {
    const reason = '[click here](https://evil.example) **now** <at>everyone</at>';
    const card = teamsCard(renderTeams(fromRun('started', started({ kind: 'http', by: 'mallory', reason }))));
    const json = JSON.stringify(card.body);
    // Only RichTextBlock/TextRun carry text: no TextBlock or FactSet, whose text Teams reads as Markdown.
    expect(json).not.toMatch(/"type":"(TextBlock|FactSet)"/);
    expect(textRuns(card.body).some((t) => t.includes(reason))).toBe(true);
  });

  it('stays under the Teams message size, cutting the error message and the figures first', () => {
    const payload = renderTeams(runFacts({ event: 'failed', run: hugeFailedRun(), job: JOB, now: T0 }));
    expect(Buffer.byteLength(JSON.stringify(payload))).toBeLessThanOrEqual(TEAMS_LIMITS.bytes);
    expect(adaptiveCardProblems(teamsCard(payload))).toEqual([]);
    const texts = textRuns(teamsCard(payload).body);
    expect(texts.find((t) => t.startsWith('no space left on device'))?.endsWith(ELLIPSIS)).toBe(true);
    expect(texts.some((t) => /^… and \d+ more databases$/.test(t))).toBe(true);
  });

  it('the Adaptive Cards library does catch a broken card', () => {
    const card = teamsCard(renderTeams(fromRun('succeeded', succeeded())));
    const broken = {
      ...card,
      body: [...card.body, { type: 'Bogus' }],
      actions: [{ type: 'Action.OpenUrl', title: 'x' }],
    } as unknown as AdaptiveCard;
    expect(adaptiveCardProblems(broken).length).toBeGreaterThanOrEqual(2);
  });
});

describe('Slack size limits', () => {
  it('cuts huge messages cleanly to Slack limits', () => {
    const run: RunRecord = { ...hugeFailedRun(), job: 'q'.repeat(63) };
    const payload = renderSlack(runFacts({ event: 'failed', run, job: { ...JOB, name: 'q'.repeat(63) }, now: T0 }));
    slackSizesOk(payload);
    // The plain text stays short enough for every chat app (Discord takes 2000 characters); the run record has the rest.
    expect(payload.text.length).toBeLessThan(4000);
    expect(payload.text).toContain('… and 390 more databases');
    const messageLine = payload.text.split('\n').find((line) => line.startsWith('no space left on device'));
    expect(messageLine?.length).toBeLessThanOrEqual(800);
    expect(messageLine?.endsWith(ELLIPSIS)).toBe(true);
    const sections = payload.blocks.flatMap((b) => (b.type === 'section' && 'text' in b ? [b.text.text] : []));
    expect(sections.some((t) => t.length > 2900 && t.endsWith(ELLIPSIS))).toBe(true);
  });

  it('truncate cuts at a line or word, never inside a surrogate pair or a link, and closes a code block', () => {
    expect(truncate('short', 10)).toBe('short');
    const words = 'alpha beta gamma delta epsilon zeta eta theta';
    const cut = truncate(words, 30);
    expect(cut.length).toBeLessThanOrEqual(30);
    expect(cut).toMatch(/^alpha beta gamma( delta)?…$/);
    const emoji = truncate(`${'x'.repeat(20)}${'😀'.repeat(20)}`, 30);
    expect(emoji.length).toBeLessThanOrEqual(30);
    expect(emoji).not.toMatch(/[\ud800-\udbff]…$/);
    const link = truncate(`${'a'.repeat(15)} <https://example.com/very/long/path|label>`, 40);
    expect(link).not.toContain('<');
    const fenced = truncate(`\`\`\`\n${'line of code\n'.repeat(50)}\`\`\``, 100);
    expect(fenced.length).toBeLessThanOrEqual(100);
    expect(fenced.endsWith('\n```')).toBe(true);
  });

  it('escapes only &, < and >', () => {
    expect(escapeSlack('a & b < c > d *e* `f`')).toBe('a &amp; b &lt; c &gt; d *e* `f`');
  });
});

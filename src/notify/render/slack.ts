import {
  describeDatabase,
  factsList,
  figuresHeading,
  EVENT_ICONS as ICONS,
  type MessageEvent,
  type MessageFacts,
  statusLine,
  TARGET_DOWN,
} from './message.js';
import { escapeSlack, truncate } from './text.js';

/**
 * The payload for Slack incoming webhooks, also accepted by Mattermost and by
 * Discord's `/slack` endpoint. Slack shows the Block Kit `blocks` and one
 * coloured attachment as the status bar; `text` is the notification fallback
 * there, and what Mattermost and Discord (which ignore blocks) show, so it
 * carries the whole message in plain lines. Every piece is cut to Slack's
 * limits. Pure.
 */

export const SLACK_LIMITS = {
  /** Slack truncates `text` beyond this. */
  text: 40_000,
  blocks: 50,
  sectionText: 3000,
  field: 2000,
  fields: 10,
  header: 150,
  contextText: 2000,
} as const;

/** Status bar colours (Slack's own palette). */
export const SLACK_COLORS: Readonly<Record<MessageEvent | 'interrupted', string>> = {
  queued: '#868686',
  started: '#1d9bd1',
  succeeded: '#2eb67d',
  failed: '#e01e5a',
  interrupted: '#e01e5a',
  skipped: '#ecb22e',
  upcoming: '#868686',
  test: '#1d9bd1',
};

type PlainText = { type: 'plain_text'; text: string; emoji: true };
type Mrkdwn = { type: 'mrkdwn'; text: string };
export type SlackBlock =
  | { type: 'header'; text: PlainText }
  | { type: 'section'; text: Mrkdwn }
  | { type: 'section'; fields: Mrkdwn[] }
  | { type: 'context'; elements: Mrkdwn[] }
  | { type: 'divider' };

export interface SlackPayload {
  text: string;
  blocks: SlackBlock[];
  attachments: Array<{ color: string; fallback: string; text: string }>;
}

function runLink(facts: MessageFacts): string | undefined {
  const run = facts.run;
  if (!run) return undefined;
  return run.url ? `Run \`${run.id}\` · <${run.url}|Open the run record>` : `Run \`${run.id}\``;
}

function section(text: string): SlackBlock {
  return { type: 'section', text: { type: 'mrkdwn', text: truncate(text, SLACK_LIMITS.sectionText) } };
}

function blocksFor(facts: MessageFacts): SlackBlock[] {
  const e = escapeSlack;
  const blocks: SlackBlock[] = [
    {
      type: 'header',
      text: { type: 'plain_text', text: truncate(`${ICONS[facts.event]} ${facts.title}`, SLACK_LIMITS.header), emoji: true },
    },
  ];
  const fields = factsList(facts)
    .slice(0, SLACK_LIMITS.fields)
    .map((f): Mrkdwn => ({ type: 'mrkdwn', text: truncate(`*${f.label}*\n${e(f.value)}`, SLACK_LIMITS.field) }));
  blocks.push({ type: 'section', fields });

  if (facts.error) {
    const { error } = facts;
    const verb = facts.run?.status === 'interrupted' ? 'Interrupted' : 'Failed';
    const lines = [`*${verb} in ${error.phase}:* \`${error.class}\``, e(error.message), `*What to do:* ${e(error.hint)}`];
    if (facts.run?.targetDown) lines.push(`:warning: *${TARGET_DOWN}*`);
    blocks.push(section(lines.join('\n')));
  }
  if (facts.skipped?.detail) blocks.push(section(e(facts.skipped.detail)));
  if (facts.verification && facts.verification.databases.length > 0) {
    const lines = facts.verification.databases.map((d) => `• ${e(describeDatabase(d))}`);
    blocks.push(section(`*${figuresHeading(facts)}*\n${lines.join('\n')}`));
  }
  if (facts.event === 'test') {
    blocks.push(section('This is a test message sent by `db-refresher notify-test`. Nothing was refreshed.'));
  }
  const link = runLink(facts);
  if (link) blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: truncate(link, SLACK_LIMITS.contextText) }] });
  return limitBlocks(blocks);
}

/** Keeps at most Slack's block count, saying how many were left out. */
export function limitBlocks(blocks: SlackBlock[]): SlackBlock[] {
  if (blocks.length <= SLACK_LIMITS.blocks) return blocks;
  const kept = blocks.slice(0, SLACK_LIMITS.blocks - 1);
  const left = blocks.length - kept.length;
  return [...kept, { type: 'context', elements: [{ type: 'mrkdwn', text: `… ${left} more ${left === 1 ? 'block' : 'blocks'} left out` }] }];
}

/** Caps for the plain-text version, which chat apps without blocks show: the run record has the rest. */
const FALLBACK = { value: 500, message: 800, databases: 10 } as const;

/** The whole message as plain lines: Slack's notification text, and the message itself in Mattermost and Discord. */
function fallbackText(facts: MessageFacts): string {
  const e = escapeSlack;
  const lines = [`${ICONS[facts.event]} ${e(facts.title)}`];
  for (const fact of factsList(facts)) lines.push(`${fact.label}: ${e(truncate(fact.value, FALLBACK.value))}`);
  if (facts.error) {
    const verb = facts.run?.status === 'interrupted' ? 'Interrupted' : 'Failed';
    lines.push(
      `${verb} in ${facts.error.phase}: ${facts.error.class}`,
      e(truncate(facts.error.message, FALLBACK.message)),
      `What to do: ${e(facts.error.hint)}`,
    );
    if (facts.run?.targetDown) lines.push(TARGET_DOWN);
  }
  if (facts.skipped?.detail) lines.push(e(truncate(facts.skipped.detail, FALLBACK.value)));
  const databases = facts.verification?.databases ?? [];
  if (databases.length > 0) {
    lines.push(`${figuresHeading(facts)}:`, ...databases.slice(0, FALLBACK.databases).map((d) => `• ${e(describeDatabase(d))}`));
    if (databases.length > FALLBACK.databases) lines.push(`… and ${databases.length - FALLBACK.databases} more databases`);
  }
  if (facts.event === 'test') lines.push('This is a test message sent by db-refresher notify-test. Nothing was refreshed.');
  if (facts.run) lines.push(facts.run.url ? `Run ${facts.run.id}: ${facts.run.url}` : `Run ${facts.run.id}`);
  return truncate(lines.join('\n'), SLACK_LIMITS.text);
}

function colorFor(facts: MessageFacts): string {
  if (facts.event === 'failed' && facts.run?.status === 'interrupted') return SLACK_COLORS.interrupted;
  return SLACK_COLORS[facts.event];
}

export function renderSlack(facts: MessageFacts): SlackPayload {
  const status = truncate(escapeSlack(statusLine(facts)), SLACK_LIMITS.sectionText);
  return {
    text: fallbackText(facts),
    blocks: blocksFor(facts),
    attachments: [{ color: colorFor(facts), fallback: status, text: status }],
  };
}

import {
  describeDatabase,
  EVENT_ICONS,
  factsList,
  figuresHeading,
  type MessageEvent,
  type MessageFacts,
  statusLine,
  TARGET_DOWN,
} from './message.js';
import { truncate } from './text.js';

/**
 * The payload for Microsoft Teams: a message with one Adaptive Card, the format
 * Teams Workflows webhooks ("When a Teams webhook request is received") and
 * the older incoming webhooks accept. Slack's format does not work there.
 *
 * Everything that comes from people or from PostgreSQL (a trigger's reason, an
 * error message) is a `TextRun` in a `RichTextBlock`, which Teams shows as
 * written: `TextBlock` and `FactSet` values are read as Markdown, so a reason
 * could otherwise forge a link. Teams refuses messages over about 28 KB, so the
 * card is kept under TEAMS_LIMITS.bytes. Pure.
 */

export const TEAMS_LIMITS = {
  /** Teams documents about 28 KB per message; leave room for its own envelope. */
  bytes: 25_000,
  value: 500,
  message: 2000,
  databases: 20,
} as const;

/** Container styles of the Adaptive Card host config: the card's colour. */
const STYLES: Readonly<Record<MessageEvent | 'interrupted', 'good' | 'attention' | 'warning' | 'accent' | 'emphasis'>> = {
  queued: 'emphasis',
  started: 'accent',
  succeeded: 'good',
  failed: 'attention',
  interrupted: 'attention',
  skipped: 'warning',
  upcoming: 'emphasis',
  test: 'accent',
};

type TextRun = {
  type: 'TextRun';
  text: string;
  weight?: 'Bolder';
  color?: 'Attention' | 'Warning';
  isSubtle?: true;
  size?: 'Small' | 'Medium';
};
type RichText = { type: 'RichTextBlock'; inlines: TextRun[] };
type Column = { type: 'Column'; width: 'auto' | 'stretch'; items: RichText[] };
export type TeamsElement =
  | RichText
  | { type: 'ColumnSet'; columns: Column[]; spacing?: 'None' }
  | { type: 'Container'; style: string; bleed: true; items: TeamsElement[] };

export interface AdaptiveCard {
  $schema: 'http://adaptivecards.io/schemas/adaptive-card.json';
  type: 'AdaptiveCard';
  version: '1.4';
  fallbackText: string;
  body: TeamsElement[];
  actions: Array<{ type: 'Action.OpenUrl'; title: string; url: string }>;
  msteams: { width: 'Full' };
}

export interface TeamsPayload {
  type: 'message';
  summary: string;
  attachments: [{ contentType: 'application/vnd.microsoft.card.adaptive'; contentUrl: null; content: AdaptiveCard }];
}

function run(text: string, style: Omit<TextRun, 'type' | 'text'> = {}): TextRun {
  return { type: 'TextRun', text, ...style };
}

function rich(...inlines: TextRun[]): RichText {
  return { type: 'RichTextBlock', inlines };
}

/** A label and its value side by side, as a FactSet would show them but without Markdown. */
function factRow(label: string, value: string): TeamsElement {
  return {
    type: 'ColumnSet',
    spacing: 'None',
    columns: [
      { type: 'Column', width: 'auto', items: [rich(run(label, { weight: 'Bolder' }))] },
      { type: 'Column', width: 'stretch', items: [rich(run(truncate(value, TEAMS_LIMITS.value)))] },
    ],
  };
}

interface Sizes {
  message: number;
  databases: number;
}

function bodyFor(facts: MessageFacts, sizes: Sizes): TeamsElement[] {
  const style = facts.event === 'failed' && facts.run?.status === 'interrupted' ? STYLES.interrupted : STYLES[facts.event];
  const body: TeamsElement[] = [
    {
      type: 'Container',
      style,
      bleed: true,
      items: [
        rich(run(`${EVENT_ICONS[facts.event]} ${facts.title}`, { weight: 'Bolder', size: 'Medium' })),
        rich(run(statusLine(facts), { isSubtle: true })),
      ],
    },
    ...factsList(facts).map((f) => factRow(f.label, f.value)),
  ];
  if (facts.error) {
    const { error } = facts;
    const verb = facts.run?.status === 'interrupted' ? 'Interrupted' : 'Failed';
    body.push(rich(run(`${verb} in ${error.phase}: ${error.class}`, { weight: 'Bolder', color: 'Attention' })));
    body.push(rich(run(truncate(error.message, sizes.message))));
    body.push(rich(run('What to do: ', { weight: 'Bolder' }), run(error.hint)));
    if (facts.run?.targetDown) body.push(rich(run(TARGET_DOWN, { weight: 'Bolder', color: 'Warning' })));
  }
  if (facts.skipped?.detail) body.push(rich(run(truncate(facts.skipped.detail, TEAMS_LIMITS.value))));
  const databases = facts.verification?.databases ?? [];
  if (databases.length > 0) {
    body.push(rich(run(figuresHeading(facts), { weight: 'Bolder' })));
    for (const d of databases.slice(0, sizes.databases)) body.push(rich(run(`• ${describeDatabase(d)}`)));
    if (databases.length > sizes.databases)
      body.push(rich(run(`… and ${databases.length - sizes.databases} more databases`, { isSubtle: true })));
  }
  if (facts.event === 'test') body.push(rich(run('This is a test message sent by db-refresher notify-test. Nothing was refreshed.')));
  if (facts.run) body.push(rich(run(`Run ${facts.run.id}`, { isSubtle: true, size: 'Small' })));
  return body;
}

function payload(facts: MessageFacts, sizes: Sizes): TeamsPayload {
  const title = `${EVENT_ICONS[facts.event]} ${facts.title}`;
  return {
    type: 'message',
    summary: truncate(title, 250),
    attachments: [
      {
        contentType: 'application/vnd.microsoft.card.adaptive',
        contentUrl: null,
        content: {
          $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
          type: 'AdaptiveCard',
          version: '1.4',
          fallbackText: truncate(`${title}\n${statusLine(facts)}`, 1000),
          body: bodyFor(facts, sizes),
          actions: facts.run?.url ? [{ type: 'Action.OpenUrl', title: 'Open the run record', url: facts.run.url }] : [],
          msteams: { width: 'Full' },
        },
      },
    ],
  };
}

export function renderTeams(facts: MessageFacts): TeamsPayload {
  // Shrink the two parts that can be long until the message fits; the run record has the rest.
  let sizes: Sizes = { message: TEAMS_LIMITS.message, databases: TEAMS_LIMITS.databases };
  for (;;) {
    const result = payload(facts, sizes);
    if (Buffer.byteLength(JSON.stringify(result)) <= TEAMS_LIMITS.bytes || (sizes.message <= 200 && sizes.databases <= 1)) return result;
    sizes = { message: Math.max(200, Math.floor(sizes.message / 2)), databases: Math.max(1, Math.floor(sizes.databases / 2)) };
  }
}

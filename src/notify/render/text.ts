/** Text helpers shared by the renderers. Pure. */

export const ELLIPSIS = '…';

const FENCE = '```';

/**
 * Shortens text to at most `max` UTF-16 code units (the stricter of the ways
 * chat services count), cutting cleanly: at a line break or a space near the
 * end when there is one, never inside a surrogate pair or a `<link|label>`,
 * closing an open ``` code block, and ending with "…" so readers see that
 * something was left out.
 */
export function truncate(text: string, max: number): string {
  if (text.length <= max) return text;
  if (max <= ELLIPSIS.length) return ELLIPSIS.slice(0, Math.max(0, max));
  // Room for the ellipsis and, in the worst case, a closing fence on its own line.
  const room = max - ELLIPSIS.length - (FENCE.length + 1);
  let cut = Math.max(0, room);
  const window = text.slice(0, cut);
  const newline = window.lastIndexOf('\n');
  const space = window.lastIndexOf(' ');
  // Give up a little text for a clean cut: a fifth at most for a line break, less for a space.
  if (newline > 0 && newline >= cut * 0.8) cut = newline;
  else if (space > 0 && space >= cut - Math.max(20, cut * 0.1)) cut = space;
  // Never split a surrogate pair.
  const last = text.charCodeAt(cut - 1);
  if (cut > 0 && last >= 0xd800 && last <= 0xdbff) cut -= 1;
  let head = text.slice(0, cut);
  // Never split a Slack link or mention: an opening < without its closing >.
  const open = head.lastIndexOf('<');
  if (open > head.lastIndexOf('>')) head = head.slice(0, open);
  head = head.replace(/\s+$/, '');
  const fences = head.split(FENCE).length - 1;
  return fences % 2 === 1 ? `${head}${ELLIPSIS}\n${FENCE}` : `${head}${ELLIPSIS}`;
}

/** Slack's mrkdwn needs exactly these three escaped in any text it should show as written. */
export function escapeSlack(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

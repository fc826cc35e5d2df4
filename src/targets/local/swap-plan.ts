/**
 * The blue/green swap of a local copy as a pure state machine: given what is on disk now, which one
 * step comes next. The effects (stop, rename, start) run one step at a time and look again after each,
 * so a process killed between or during any two steps leaves a state this function continues from.
 * Renames are atomic on one filesystem, which is what makes every intermediate state well defined.
 *
 * Slots (all beside the configured dataDir, so one filesystem):
 * - current:  dataDir itself, served on the job's port;
 * - next:     `<dataDir>.db-refresher-next`, the new copy, on a spare port until the swap;
 * - previous: `<dataDir>.db-refresher-previous`, the copy the last swap replaced, kept for rollback.
 * A journal file `<dataDir>.db-refresher-swap.json` is written once the new copy is verified and the
 * decision to swap is taken; it names the copies by their run ids, so repair never guesses which copy
 * is which. It is removed when the swap is complete.
 */

export type Slot = 'current' | 'next' | 'previous';

export function slotPaths(dataDir: string): Record<Slot, string> & { journal: string } {
  return {
    current: dataDir,
    next: `${dataDir}.db-refresher-next`,
    previous: `${dataDir}.db-refresher-previous`,
    journal: `${dataDir}.db-refresher-swap.json`,
  };
}

/** What one slot holds, as the effects read it from disk. */
export type SlotView =
  | { kind: 'missing' }
  /** A copy this job made: its marker's run id, the port its config names, the port it runs on (if it runs). */
  | { kind: 'ours'; runId: string; configuredPort?: number | undefined; runningPort?: number | undefined }
  /** Anything else: another job's copy, an unmarked data directory, a file. Never touched. */
  | { kind: 'foreign'; reason: string };

export interface SwapJournal {
  kind: 'swap' | 'rollback';
  job: string;
  /** The run doing the swap (a rollback is a run of its own). */
  runId: string;
  /** Run id (marker) of the copy that becomes current. */
  incoming: string;
  /** Run id of the copy that leaves current, if there was one. */
  outgoing?: string | undefined;
  startedAt: string;
}

export interface LocalSwapView {
  current: SlotView;
  next: SlotView;
  previous: SlotView;
  journal?: SwapJournal | undefined;
  /** The job's port: where current must run once the swap is done. */
  port: number;
}

export type SwapStep =
  | { step: 'stop'; slot: Slot; drain: boolean }
  /** Rewrites the copy's port setting to the job's port (while stopped). */
  | { step: 'retarget'; slot: Slot; port: number }
  | { step: 'move'; from: Slot; to: Slot }
  | { step: 'remove'; slot: Slot; why: string }
  | { step: 'start'; slot: 'current' }
  | { step: 'mark-retired'; slot: 'previous' }
  | { step: 'finish' }
  /** The swap cannot go on safely; the message says what is wrong and what was left as it is. */
  | { step: 'refuse'; message: string };

type Ours = Extract<SlotView, { kind: 'ours' }>;

/** The slot's copy when it is ours and (if given) made by that run. Not a type guard: false says nothing about the kind. */
const ours = (view: SlotView, runId?: string): Ours | undefined =>
  view.kind === 'ours' && (runId === undefined || view.runId === runId) ? view : undefined;

function foreignSlot(view: LocalSwapView): string | undefined {
  for (const slot of ['current', 'next', 'previous'] as const) {
    const v = view[slot];
    if (v.kind === 'foreign') return `${slot}: ${v.reason}`;
  }
  return undefined;
}

/**
 * The next step of the swap or rollback the journal describes. `retiredMarked` says whether the copy
 * in previous already carries its retirement time (the clock keepPrevious runs on).
 */
export function nextSwapStep(view: LocalSwapView, retiredMarked: boolean): SwapStep {
  const journal = view.journal;
  if (!journal) return { step: 'finish' };
  const foreign = foreignSlot(view);
  if (foreign) return { step: 'refuse', message: `a slot holds something db-refresher did not make (${foreign}); nothing was moved` };
  return journal.kind === 'swap' ? swapStep(view, journal, retiredMarked) : rollbackStep(view, journal, retiredMarked);
}

function swapStep(view: LocalSwapView, journal: SwapJournal, retiredMarked: boolean): SwapStep {
  const { previous, port } = view;
  const incoming = journal.incoming;
  // Done: the incoming copy is current and serves on the job's port.
  const arrived = ours(view.current, incoming);
  if (arrived) {
    if (arrived.configuredPort !== undefined && arrived.configuredPort !== port && arrived.runningPort === undefined)
      return { step: 'retarget', slot: 'current', port };
    if (arrived.runningPort === undefined) return { step: 'start', slot: 'current' };
    if (ours(previous) && !retiredMarked) return { step: 'mark-retired', slot: 'previous' };
    return { step: 'finish' };
  }
  const next = ours(view.next, incoming);
  if (next) {
    // The new copy stops on its spare port and is pointed at the job's port before it moves.
    if (next.runningPort !== undefined) return { step: 'stop', slot: 'next', drain: false };
    if (next.configuredPort !== port) return { step: 'retarget', slot: 'next', port };
    const current = ours(view.current);
    if (current) {
      // Removed while the current copy still serves, so the removal is not part of the downtime.
      if (ours(previous)) return { step: 'remove', slot: 'previous', why: 'the previous copy makes room for the one now retiring' };
      if (current.runningPort !== undefined) return { step: 'stop', slot: 'current', drain: true };
      return { step: 'move', from: 'current', to: 'previous' };
    }
    return { step: 'move', from: 'next', to: 'current' };
  }
  // The incoming copy is nowhere: someone removed it. Keep (or put back) the outgoing copy.
  if (view.current.kind === 'missing' && ours(previous, journal.outgoing)) return { step: 'move', from: 'previous', to: 'current' };
  const current = ours(view.current);
  if (current) {
    if (current.runningPort === undefined) return { step: 'start', slot: 'current' };
    return {
      step: 'refuse',
      message: `the new copy (run ${incoming}) is no longer in the next slot; the current copy (run ${current.runId}) keeps serving`,
    };
  }
  return { step: 'refuse', message: `neither the new copy (run ${incoming}) nor a current copy is on disk; run a refresh` };
}

/**
 * A rollback exchanges current and previous through the next slot (current → next, previous → current,
 * next → previous), so the rolled-back copy is kept for keepPrevious too, and a second rollback rolls forward.
 */
function rollbackStep(view: LocalSwapView, journal: SwapJournal, retiredMarked: boolean): SwapStep {
  const { next, previous } = view;
  const { incoming, outgoing } = journal;
  const arrived = ours(view.current, incoming);
  if (arrived) {
    if (ours(next, outgoing)) {
      if (ours(previous)) return { step: 'refuse', message: 'both next and previous hold a copy; nothing was moved' };
      return { step: 'move', from: 'next', to: 'previous' };
    }
    if (arrived.runningPort === undefined) return { step: 'start', slot: 'current' };
    if (ours(previous) && !retiredMarked) return { step: 'mark-retired', slot: 'previous' };
    return { step: 'finish' };
  }
  if (ours(previous, incoming)) {
    const leaving = ours(view.current, outgoing);
    if (leaving) {
      if (leaving.runningPort !== undefined) return { step: 'stop', slot: 'current', drain: true };
      if (ours(next)) return { step: 'remove', slot: 'next', why: 'a half-made copy is in the way of the rollback' };
      return { step: 'move', from: 'current', to: 'next' };
    }
    if (view.current.kind === 'missing') return { step: 'move', from: 'previous', to: 'current' };
  }
  const current = ours(view.current);
  if (current) {
    if (current.runningPort === undefined) return { step: 'start', slot: 'current' };
    return {
      step: 'refuse',
      message: `the copy to roll back to (run ${incoming}) is gone; the current copy (run ${current.runId}) keeps serving`,
    };
  }
  return { step: 'refuse', message: `no copy to roll back to (run ${incoming}) and no current copy; run a refresh` };
}

/**
 * What to do with the slots outside a swap (no journal): before cloning beside the current copy, and
 * when the service starts. A copy in next is a half-made one from a run that failed or died; it goes.
 * A copy in previous goes once keepPrevious has passed since it retired.
 */
export function cleanupSteps(input: {
  next: SlotView;
  previous: SlotView;
  retiredAt?: string | undefined;
  keepPreviousSeconds: number;
  now: Date;
  /** Before a clone: the previous copy gives way now (the swap would replace it anyway). */
  makeRoom: boolean;
}): SwapStep[] {
  const steps: SwapStep[] = [];
  if (input.next.kind === 'ours') {
    if (input.next.runningPort !== undefined) steps.push({ step: 'stop', slot: 'next', drain: false });
    steps.push({ step: 'remove', slot: 'next', why: 'a half-made copy left by a run that did not reach the swap' });
  }
  if (input.previous.kind === 'ours') {
    const expiry = previousExpiry(input.retiredAt, input.keepPreviousSeconds);
    if (input.makeRoom || (expiry !== undefined && expiry.getTime() <= input.now.getTime())) {
      if (input.previous.runningPort !== undefined) steps.push({ step: 'stop', slot: 'previous', drain: false });
      steps.push({
        step: 'remove',
        slot: 'previous',
        why: input.makeRoom ? 'a new copy is being made; the previous one gives way' : 'keepPrevious has passed',
      });
    }
  }
  return steps;
}

/** When a retired copy may go; undefined when its retirement time is not known yet (never guess early). */
export function previousExpiry(retiredAt: string | undefined, keepPreviousSeconds: number): Date | undefined {
  if (!retiredAt) return undefined;
  const at = Date.parse(retiredAt);
  return Number.isNaN(at) ? undefined : new Date(at + keepPreviousSeconds * 1000);
}

/** The port a postgresql.auto.conf sets (its last `port =` line wins, as in PostgreSQL). */
export function portSetting(autoConf: string): number | undefined {
  let port: number | undefined;
  for (const match of autoConf.matchAll(/^\s*port\s*=\s*'?(\d+)'?\s*(#.*)?$/gm)) port = Number(match[1]);
  return port;
}

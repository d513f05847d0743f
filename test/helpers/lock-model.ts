/**
 * A reference model of the lock core (lib/ww) for the model-based property test (test/unit/lock-model.test.ts):
 * the ww rules written the simplest way, over plain arrays, from the kernel's description
 * (Documentation/locking/ww-mutex-design.rst, kernel/locking/ww_mutex.h) and docs/design.md "Lock core":
 * - a request is blocked by a conflicting holder or by a conflicting request queued ahead of it;
 * - queue order (__ww_mutex_add_waiter): contexts by stamp, oldest first; a context goes before the first
 *   younger context that follows the last older one; ctx-less requests go to the tail;
 * - a blocked request of a context that holds locks backs off (EDEADLK): wait-die when an older context holds
 *   the mutex or waits ahead in a conflicting mode; wound-wait when the context was wounded. A blocked
 *   wound-wait request wounds every younger context holding the mutex. lockSlow requests neither die nor wound;
 * - a waiter is granted once nothing blocks it; the model runs every waiter to a fixpoint after each change,
 *   which is what the store's wake-ups do (every change wakes the mutex's waiters, each re-checks).
 * A request with a deadline already passed is never re-checked once queued: it times out (ETIMEDOUT).
 * - a cohort hand-off (ww-rules.ts cohortPass, docs/design.md "Cohort hand-offs"): every hold and request belongs
 *   to a participant (a thread; `part`). A release whose queue head is another participant's first grants the
 *   releaser's own first queued request behind it, if no holder conflicts with it, at most COHORT_BOUND
 *   passes over one head (whoever passes); the fixpoint follows;
 * A waitUnlocked() watcher is in no queue (it is ahead of nobody); it resolves once nothing conflicting holds the
 * mutex. Right after a release it races the waiters that the release lets in: if the mutex was free for it
 * between the two, it may have resolved (`mayResolve`), and if it is still free after them, it has.
 */

/** 'read' (shared) or 'write' (exclusive). */
export type Mode = 'read' | 'write';
/** How a request ended, or 'pending'. Error outcomes are the DmabufError codes. */
export type Outcome = 'pending' | 'granted' | 'EDEADLK' | 'ETIMEDOUT' | 'ABORT_ERR' | 'EALREADY' | 'EINVAL' | 'EBADF' | 'EPERM';
/** The ww algorithm of a class. */
export type Kind = 'wound-wait' | 'wait-die';

/** A hold: who (a context's name, or a ctx-less actor), its stamp (null: ctx-less) and mode. */
export interface Hold {
  actor: string;
  stamp: number | null;
  mode: Mode;
  /** An ordered context (AcquireContextOptions.ordered): two of them never wound or kill each other. */
  ordered?: boolean;
  /** The participant (thread) that requests and holds (cohort hand-offs); one participant if left out. */
  part?: number;
}

/** How many releases in a row may pass a mutex to the releaser's own waiter over the queue's head (ww-rules.ts). */
export const COHORT_BOUND = 8;

/** A mutex's cohort count: the head (its request id) passed over last, and how many times. */
export interface Cohort {
  head: number | undefined;
  passes: number;
}

/** A queued request. */
export interface Waiter extends Hold {
  req: number;
  /** A lock() (ww checks apply), not a lockSlow(). */
  ww: boolean;
  /** Its deadline has passed: it only waits to time out. */
  timingOut: boolean;
}

/** A pending waitUnlocked(). */
export interface Watcher {
  req: number;
  key: number;
  mode: Mode;
  /** The mutex was free for it for a moment: it may have resolved, or may still wait. */
  mayResolve: boolean;
}

/** Whether two modes exclude each other. */
export function conflicts(a: Mode, b: Mode): boolean {
  return a === 'write' || b === 'write';
}

/** Where a request of `stamp` (null: ctx-less) is queued in `queue` (kernel __ww_mutex_add_waiter). */
export function insertionIndex(queue: readonly Hold[], stamp: number | null): number {
  if (stamp === null) return queue.length;
  let lastOlder = -1;
  queue.forEach((w, i) => {
    if (w.stamp !== null && w.stamp < stamp) lastOlder = i;
  });
  for (let i = lastOlder + 1; i < queue.length; i++) if ((queue[i] as Hold).stamp !== null) return i;
  return queue.length;
}

/** The model: holders and queues per mutex (by index), wounded contexts, and every request's outcome. */
export class LockModel {
  readonly holders: Hold[][];
  readonly queues: Waiter[][];
  readonly wounded = new Set<string>();
  readonly outcomes = new Map<number, Outcome>();
  readonly watchers: Watcher[] = [];
  /** The highest key each ordered context took since it last held nothing. */
  readonly lastKey = new Map<string, bigint>();
  /** Per mutex: the cohort count (see Cohort). */
  readonly cohorts: Cohort[];
  /** Cohort passes made so far (a test counts them). */
  cohortPasses = 0;

  /** `keys`: each mutex's key (ordered contexts must lock them in ascending order). */
  constructor(readonly kind: Kind, readonly keys: readonly bigint[]) {
    this.holders = keys.map(() => []);
    this.queues = keys.map(() => []);
    this.cohorts = keys.map(() => ({ head: undefined, passes: 0 }));
  }

  /** Whether a lock of `key` by ordered context `r` breaks ascending order (EINVAL). */
  outOfOrder(r: Hold, key: number): boolean {
    const last = this.lastKey.get(r.actor);
    return r.ordered === true && this.acquired(r.actor) > 0 && last !== undefined && (this.keys[key] as bigint) <= last;
  }

  private grant(key: number, h: Hold): void {
    (this.holders[key] as Hold[]).push({ actor: h.actor, stamp: h.stamp, mode: h.mode, ordered: h.ordered, part: h.part });
    if (h.ordered) this.lastKey.set(h.actor, this.keys[key] as bigint);
  }

  /** How many holds `actor` has. */
  acquired(actor: string): number {
    return this.holders.reduce((n, hs) => n + hs.filter((h) => h.actor === actor).length, 0);
  }

  /** Whether `actor` holds mutex `key`. */
  holds(actor: string, key: number): boolean {
    return (this.holders[key] as Hold[]).some((h) => h.actor === actor);
  }

  /** The request `actor` has queued, if any. */
  pendingOf(actor: string): Waiter | undefined {
    for (const q of this.queues) for (const w of q) if (w.actor === actor) return w;
    return undefined;
  }

  /** Every queued request. */
  pending(): Waiter[] {
    return this.queues.flat();
  }

  private blocked(key: number, mode: Mode, ahead: readonly Hold[]): boolean {
    return (this.holders[key] as Hold[]).some((h) => conflicts(h.mode, mode)) || ahead.some((w) => conflicts(w.mode, mode));
  }

  /**
   * The ww check of a blocked request of a context (kernel __ww_mutex_check_kill, with shared holders);
   * wound-wait wounds the younger holders here. True: the request fails EDEADLK.
   */
  private mustBackOff(key: number, r: Hold, ahead: readonly Hold[]): boolean {
    const stamp = r.stamp as number;
    const holders = this.holders[key] as Hold[];
    // Two ordered contexts never wound or kill each other.
    const exempt = (h: Hold): boolean => r.ordered === true && h.ordered === true;
    if (this.kind === 'wait-die') {
      if (this.acquired(r.actor) === 0) return false;
      if (ahead.some((w) => w.stamp !== null && !exempt(w) && conflicts(w.mode, r.mode))) return true;
      return holders.some((h) => h.stamp !== null && !exempt(h) && h.stamp < stamp);
    }
    if (this.acquired(r.actor) > 0 && this.wounded.has(r.actor)) return true;
    for (const h of holders) if (h.stamp !== null && !exempt(h) && h.stamp > stamp) this.wounded.add(h.actor);
    return false;
  }

  /**
   * A lock() / lockSlow() that passed the argument checks (ctx not busy, not holding this mutex): grants it,
   * fails it EDEADLK, or queues it; then runs the waiters to their fixpoint. Returns the immediate outcome.
   */
  request(req: number, r: Hold, key: number, ww: boolean, timingOut: boolean): Outcome {
    const q = this.queues[key] as Waiter[];
    const at = insertionIndex(q, r.stamp);
    const ahead = q.slice(0, at);
    let out: Outcome;
    if (!this.blocked(key, r.mode, ahead)) {
      this.grant(key, r);
      out = 'granted';
    } else if (r.stamp !== null && ww && this.mustBackOff(key, r, ahead)) {
      out = 'EDEADLK';
    } else {
      q.splice(at, 0, { ...r, req, ww, timingOut });
      out = 'pending';
    }
    this.outcomes.set(req, out);
    this.fixpoint();
    return out;
  }

  private unlockedFor(key: number, mode: Mode): boolean {
    return !(this.holders[key] as Hold[]).some((h) => conflicts(h.mode, mode));
  }

  /** waitUnlocked(): resolved now if nothing conflicting holds the mutex, else a watcher. */
  watch(req: number, key: number, mode: Mode): Outcome {
    const out: Outcome = this.unlockedFor(key, mode) ? 'granted' : 'pending';
    if (out === 'pending') this.watchers.push({ req, key, mode, mayResolve: false });
    this.outcomes.set(req, out);
    return out;
  }

  /** The watcher `req` was seen resolved (allowed only if it may have). */
  watcherResolved(req: number): void {
    const i = this.watchers.findIndex((w) => w.req === req && w.mayResolve);
    if (i < 0) return;
    this.watchers.splice(i, 1);
    this.outcomes.set(req, 'granted');
  }

  /** tryLock (never waits, never wounds): true if granted. */
  tryLock(r: Hold, key: number): boolean {
    const q = this.queues[key] as Waiter[];
    if (this.blocked(key, r.mode, q.slice(0, insertionIndex(q, r.stamp)))) return false;
    this.grant(key, r);
    this.fixpoint();
    return true;
  }

  /** Releases `actor`'s hold on `key` (the most recent one for a ctx-less actor). False if it holds none. */
  unlock(actor: string, key: number): boolean {
    const hs = this.holders[key] as Hold[];
    const i = hs.map((h) => h.actor).lastIndexOf(actor);
    if (i < 0) return false;
    const part = (hs[i] as Hold).part;
    hs.splice(i, 1);
    // A context that holds nothing is no longer wounded (it has backed off).
    if (this.acquired(actor) === 0) this.wounded.delete(actor);
    this.cohortPass(key, part);
    for (const w of this.watchers) if (w.key === key && this.unlockedFor(key, w.mode)) w.mayResolve = true;
    this.fixpoint();
    for (const w of this.watchers.filter((x) => x.key === key && this.unlockedFor(key, x.mode))) {
      this.watchers.splice(this.watchers.indexOf(w), 1);
      this.outcomes.set(w.req, 'granted');
    }
    return true;
  }

  /**
   * The cohort hand-off at a release by participant `part` of mutex `key`: the head of the queue is
   * another participant's, and the first request of `part` behind it is granted if no holder conflicts with
   * it (what is queued ahead does not count), unless `part` passed this mutex COHORT_BOUND times in a row.
   * A head of `part` itself starts the count again.
   */
  private cohortPass(key: number, part: number | undefined): void {
    const q = this.queues[key] as Waiter[];
    const head = q[0];
    if (head === undefined || head.part === part || this.passesOver(key) >= COHORT_BOUND) return;
    const w = q.find((x) => x.part === part);
    if (w === undefined || !this.unlockedFor(key, w.mode)) return;
    this.remove(w, 'granted');
    this.grant(key, w);
    this.countPass(key);
  }

  /** How many passes went over the current head of `key`'s queue. */
  private passesOver(key: number): number {
    const cohort = this.cohorts[key] as Cohort;
    return cohort.head === (this.queues[key] as Waiter[])[0]?.req ? cohort.passes : 0;
  }

  private countPass(key: number): void {
    const passes = this.passesOver(key);
    const cohort = this.cohorts[key] as Cohort;
    cohort.head = (this.queues[key] as Waiter[])[0]?.req;
    cohort.passes = passes + 1;
    this.cohortPasses++;
  }

  /** The queued requests whose deadline passed leave with ETIMEDOUT. */
  timeOut(): void {
    for (const q of this.queues) {
      for (const w of q.filter((x) => x.timingOut)) this.remove(w, 'ETIMEDOUT');
    }
    this.fixpoint();
  }

  /** The queued request `req` is aborted. */
  abort(req: number): void {
    const w = this.pending().find((x) => x.req === req);
    if (w !== undefined) this.remove(w, 'ABORT_ERR');
    this.fixpoint();
  }

  private remove(w: Waiter, out: Outcome): void {
    for (const q of this.queues) {
      const i = q.indexOf(w);
      if (i >= 0) q.splice(i, 1);
    }
    this.outcomes.set(w.req, out);
  }

  /** Re-checks every waiter until nothing changes (grants, EDEADLK, wounds). */
  private fixpoint(): void {
    for (let changed = true; changed; ) {
      changed = false;
      this.queues.forEach((q, key) => {
        for (const w of [...q]) {
          if (w.timingOut) continue;
          const ahead = q.slice(0, q.indexOf(w));
          if (!this.blocked(key, w.mode, ahead)) {
            this.remove(w, 'granted');
            this.grant(key, w);
            changed = true;
          } else if (w.stamp !== null && w.ww) {
            const woundedBefore = this.wounded.size;
            if (this.mustBackOff(key, w, ahead)) {
              this.remove(w, 'EDEADLK');
              changed = true;
            } else if (this.wounded.size !== woundedBefore) {
              changed = true;
            }
          }
        }
      });
    }
  }
}

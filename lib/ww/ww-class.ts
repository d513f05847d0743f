/**
 * A ww (wound/wait) lock class: the deadlock-avoidance algorithm shared by a set of mutexes that are locked
 * together under one acquire context (kernel `DEFINE_WW_CLASS` / `DEFINE_WD_CLASS`).
 */
import { AcquireContext, type AcquireContextOptions } from './acquire-context';
import { KIND_WAIT_DIE, KIND_WOUND_WAIT } from './layout';
import { argTypeError, checkName } from '../errors';
import { DEFAULT_DOMAIN, checkDomain, resolveGroup } from './store-file';

/** 'wound-wait': older contexts wound younger holders (fewer back-offs); 'wait-die': younger requesters die. */
export type WwClassKind = 'wound-wait' | 'wait-die';

/** Options of a WwClass. */
export interface WwClassOptions {
  /**
   * The lock domain: mutexes of one key are the same lock in every thread and process that uses the same
   * domain (a store file of the user, see docs/processes.md). Default: 'default'.
   */
  domain?: string;
  /**
   * Opt-in: share the domain with every user of this unix group (name or gid), not just this user. The
   * process must be a member (else EACCES). See docs/processes.md.
   */
  group?: string | number;
}

/**
 * A ww lock class. Every WwMutex locked under one AcquireContext must belong to a class of the same kind;
 * the kind is what the table checks (class objects are per thread, the lock state is shared).
 */
export class WwClass {
  /** The algorithm. */
  readonly kind: WwClassKind;
  /** A label for diagnostics. */
  readonly name: string;
  /** @internal numeric kind stored in the shared table. */
  readonly kindId: number;
  /** The lock domain (store) of this class's mutexes and contexts. */
  readonly domain: string;
  /** The gid of a group-shared domain; undefined for the user's own. */
  readonly group: number | undefined;

  /**
   * @param kind 'wound-wait' (default, the kernel's DEFINE_WW_CLASS) or 'wait-die' (DEFINE_WD_CLASS).
   * @param name label used in diagnostics.
   * @param options the lock domain (and group).
   */
  constructor(kind: WwClassKind = 'wound-wait', name?: string, options?: WwClassOptions) {
    if (kind !== 'wound-wait' && kind !== 'wait-die') throw argTypeError('kind', "'wound-wait' or 'wait-die'", kind);
    this.kind = kind;
    this.name = checkName(name, 'name') ?? kind;
    this.kindId = kind === 'wait-die' ? KIND_WAIT_DIE : KIND_WOUND_WAIT;
    this.domain = options?.domain === undefined ? DEFAULT_DOMAIN : checkDomain(options.domain);
    this.group = options?.group === undefined ? undefined : resolveGroup(options.group);
  }

  /**
   * Starts an acquire context (kernel ww_acquire_init): takes a new stamp, younger than every existing one.
   * Keep the context across EDEADLK retries so the task ages and cannot starve; fini() it when done.
   */
  acquireContext(options?: AcquireContextOptions): AcquireContext {
    return new AcquireContext(this, options);
  }
}

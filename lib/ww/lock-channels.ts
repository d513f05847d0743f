/**
 * Observability of the lock core: diagnostics_channel names (stable, public) and the channels themselves.
 * Messages are only built when a channel has subscribers, so an unobserved lock pays one boolean check.
 */
import * as dc from 'node:diagnostics_channel';

/** Published when a lock is acquired: `{ key, ctxName, stamp, mode, waitedMs }`. */
export const CHANNEL_ACQUIRED = 'dmabuf-sync:acquired';
/** Published when a lock() has to wait: `{ key, ctxName, stamp, mode }`. */
export const CHANNEL_CONTENDED = 'dmabuf-sync:contended';
/** Published when lock() returns EDEADLK (the caller must back off): `{ key, ctxName, stamp, mode, reason }`. */
export const CHANNEL_BACKOFF = 'dmabuf-sync:backoff';
/** Published when a context is forced off its locks by the watchdog: `{ ctxId, ctxName, keys, tags, byThreadId }`. */
export const CHANNEL_FORCED_UNLOCK = 'dmabuf-sync:forced-unlock';

/**
 * Published when a lock is granted whose previous write holder died holding it (its process was killed, its
 * worker terminated): the data may be half written. `{ key, ctxName, stamp, mode }`.
 */
export const CHANNEL_OWNER_DIED = 'dmabuf-sync:owner-died';

/** @internal */
export const ownerDiedChannel = dc.channel(CHANNEL_OWNER_DIED);
/** @internal */
export const acquiredChannel = dc.channel(CHANNEL_ACQUIRED);
/** @internal */
export const contendedChannel = dc.channel(CHANNEL_CONTENDED);
/** @internal */
export const backoffChannel = dc.channel(CHANNEL_BACKOFF);
/** @internal */
export const forcedChannel = dc.channel(CHANNEL_FORCED_UNLOCK);

/**
 * Revocation across processes: what the lock core does so that a holder in another process can be forced
 * off safely. The lock core knows nothing of views or mappings: a context has one opaque 64-bit *token*
 * (assigned under the table lock when the context first asks for it: ww-rules.ts tagHoldForView, at the sync
 * layer's first map()), the layer that hands out CPU views registers them
 * under it (native/mapping.cc), and forcing a holder of another process first asks that process's revoker
 * thread (native/futex.cc, which revokes every mapping made with the token) and waits for its
 * acknowledgement. Within the forcing process no token is needed: the force hook gets the holds' tags.
 *
 * The request is a seqlock on the participant's P_REVOKE_REQ (odd while it is written; the table lock
 * makes the poster unique), the acknowledgement the token stored into the context's C_REVOKED word.
 * Every function runs inside the table's critical section.
 * @internal
 */
import { threadId } from 'node:worker_threads';
import { native } from '../kernel/native';
import { C_REVOKED, C_TOKEN, P_PID, P_REVOKE_ACK_AT, P_REVOKE_REQ, P_REVOKE_TOKEN } from './layout';
import type { Table } from './table';

/**
 * This thread's revocation tokens: its threadId (unique in the process for the process's life) above bit 40,
 * a counter below. A token only has to be unique in its process (the process's revoker revokes it there) and
 * never 0n; made here, assigning one costs no addon call inside the table's critical section. (The addon's
 * own newRevocationToken() counts from 1 and stays far below 2^40: the two never meet.)
 */
const TOKEN_BASE = (BigInt(threadId) + 1n) << 40n;
let tokensMade = 0;

/** A revocation token never made before in this process (never 0n). */
export function newRevocationToken(): bigint {
  return TOKEN_BASE + BigInt(++tokensMade);
}

/** Context c's revocation token, assigned on first use (never 0n). */
export function ctxToken(t: Table, c: number): bigint {
  const idx = (t.ctxOff(c) + C_TOKEN) >> 1;
  let token = t.i64[idx] as bigint;
  if (token === 0n) {
    token = newRevocationToken();
    t.i64[idx] = token;
  }
  return token;
}

/** Whether participant `part` is a thread of another process (its CPU views are out of this one's reach). */
export function isForeign(t: Table, part: number): boolean {
  return t.i32[t.partOff(part) + P_PID] !== process.pid;
}

/**
 * Whether context c, owned by participant `part` of another process, may still write through a view it
 * handed out: it has a token that its process has not acknowledged as revoked. Then the request is posted
 * (again: a repeated request is served once) and the caller must not force c yet.
 */
export function revocationPending(t: Table, c: number, part: number): boolean {
  const coff = t.ctxOff(c);
  const token = Atomics.load(t.i64, (coff + C_TOKEN) >> 1);
  if (token === 0n || Atomics.load(t.i64, (coff + C_REVOKED) >> 1) === token) return false;
  postRevocation(t, part, token, coff);
  return true;
}

/** Asks the revoker thread of participant `part` to revoke `token` and acknowledge into C_REVOKED at `coff`. */
function postRevocation(t: Table, part: number, token: bigint, coff: number): void {
  const i32 = t.i32;
  const poff = t.partOff(part);
  let v = Atomics.load(i32, poff + P_REVOKE_REQ);
  if ((v & 1) !== 0) v++; // a poster died mid-request: its half-written request is void
  Atomics.store(i32, poff + P_REVOKE_REQ, v + 1);
  Atomics.store(t.i64, (poff + P_REVOKE_TOKEN) >> 1, token);
  Atomics.store(i32, poff + P_REVOKE_ACK_AT, coff + C_REVOKED);
  Atomics.store(i32, poff + P_REVOKE_REQ, v + 2);
  native.futexWake(t.buffer, poff + P_REVOKE_REQ, 1);
}

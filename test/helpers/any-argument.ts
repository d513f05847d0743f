/**
 * Property-test helpers for the public API's argument handling: any JavaScript value passed for any
 * argument must end in a typed error that names the argument (TypeError/RangeError with Node's codes) or a
 * DmabufError with an errno-style code — never a raw TypeError from inside the library, never an error
 * raised while formatting the message.
 */
import fc from 'fast-check';
import { DmabufError } from '../../lib';

/** Values that have broken argument checks before: symbols, bigints, functions, NaN, huge and negative numbers. */
export const awkward: unknown[] = [
  undefined,
  null,
  Symbol('sym'),
  10n ** 30n,
  -5n,
  0n,
  NaN,
  Infinity,
  -Infinity,
  -1,
  2 ** 53,
  Number.MAX_VALUE,
  1.5,
  '',
  'read',
  () => 1,
  function named(): void {},
  {},
  [],
  Object.create(null),
  { toString: 'not a function' },
  { valueOf: () => { throw new Error('valueOf called'); } },
  new Date(0),
  /re/,
  new Map(),
  new Uint8Array(4),
];

/** Any value: fast-check's anything (with bigints, null-prototype objects, typed arrays...) or an awkward one. */
export const anyValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.anything({ withBigInt: true, withNullPrototype: true, withTypedArray: true, withMap: true, withSet: true, withDate: true, withBoxedValues: true, withSparseArray: true }),
  fc.constantFrom(...awkward),
);

/** The outcome of a call: what it returned (awaited if a promise) or what it threw/rejected with. */
export async function outcome(call: () => unknown): Promise<{ ok: true; value: unknown } | { ok: false; error: unknown }> {
  try {
    const v = call();
    return { ok: true, value: v instanceof Promise ? await v : v };
  } catch (error) {
    return { ok: false, error };
  }
}

/**
 * Asserts that `error` is one of the library's typed errors; an argument error must name `argument` (the
 * parameter, e.g. 'fd', or an option path, e.g. 'options.timeoutMs').
 */
export function expectTypedError(error: unknown, argument: string): void {
  if (error instanceof DmabufError) {
    expect(error.code).toMatch(/^(E[A-Z]+|ABORT_ERR)$/);
    return;
  }
  expect(error).toBeInstanceOf(Error);
  const e = error as Error & { code?: unknown };
  expect([TypeError, RangeError]).toContain(e.constructor);
  expect(e.code).toMatch(/^ERR_(INVALID_ARG_TYPE|OUT_OF_RANGE)$/);
  expect(e.message).toContain(`"${argument.split('.')[0]}`);
}

/** Closes whatever a successful call returned (a buffer, a sync file, a device...). */
export function dispose(value: unknown): void {
  const v = value as { close?: unknown; fini?: unknown; dispose?: unknown } | null;
  if (v === null || typeof v !== 'object') return;
  for (const m of ['close', 'fini', 'dispose'] as const) {
    if (typeof v[m] === 'function') {
      try {
        (v[m] as () => void)();
      } catch {
        // A destroyed-twice error is not what this helper checks.
      }
    }
  }
}

/**
 * One property: for every value, `call(value)` either succeeds (its result is disposed) or fails with a
 * typed error naming `argument`.
 */
export async function checkArgument(argument: string, call: (value: unknown) => unknown, numRuns = 60): Promise<void> {
  await fc.assert(
    fc.asyncProperty(anyValue, async (value) => {
      const r = await outcome(() => call(value));
      if (r.ok) dispose(r.value);
      else expectTypedError(r.error, argument);
    }),
    { numRuns, examples: awkward.map((v) => [v]) },
  );
}

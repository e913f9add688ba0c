/**
 * `defaults` overridden by the options `given` (already checked for unknown names), except those set to
 * `undefined`, which mean "the default". The values are still unchecked: the caller checks each.
 * @internal
 */
export function withDefaults<D extends object>(
  defaults: D,
  given: Record<string, unknown>,
): Record<keyof D, unknown> & Record<string, unknown> {
  const merged: Record<string, unknown> = { ...(defaults as Record<string, unknown>) };
  for (const [key, value] of Object.entries(given)) if (value !== undefined) merged[key] = value;
  return merged as Record<keyof D, unknown> & Record<string, unknown>;
}

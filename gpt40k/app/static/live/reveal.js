// The reveal loop's arithmetic: how many written characters to show at each frame, at the chosen pace.

export const MAX_PER_FRAME = 2;  // never a burst after a slow frame
export const MAX_FRAME_S = 0.25;

export const frameSeconds = (now, lastTick) => (lastTick ? Math.min(MAX_FRAME_S, (now - lastTick) / 1000) : 0);

// pace: characters a second (0: everything available at once); allowance: characters owed so far.
export function advance(allowance, dt, pace, available, shown) {
  if (pace === 0) return {allowance, shown: available};
  allowance = Math.min(allowance + dt * pace, MAX_PER_FRAME);
  const n = Math.min(Math.floor(allowance), available - shown);
  return n > 0 ? {allowance: allowance - n, shown: shown + n} : {allowance, shown};
}

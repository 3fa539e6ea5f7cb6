// The reveal loop's arithmetic: how many written characters to show at each frame, at the chosen pace.

// A frame counts for at most this long: a tab hidden for minutes does not flood the text when it comes back.
export const MAX_FRAME_S = 0.25;
// The text owes at most this much of the pace: a slow frame is caught up at the next (a slow computer keeps
// the pace, as at 120/s a 30-frames-a-second one must show 4 characters a frame), but after a wait for the
// server the text goes on at the pace rather than in a burst.
export const MAX_OWED_S = 0.25;

export const frameSeconds = (now, lastTick) => (lastTick ? Math.min(MAX_FRAME_S, (now - lastTick) / 1000) : 0);

// pace: characters a second (0: everything available at once); allowance: characters owed so far.
export function advance(allowance, dt, pace, available, shown) {
  if (pace === 0) return {allowance, shown: available};
  allowance = Math.min(allowance + dt * pace, Math.max(1, pace * MAX_OWED_S));
  const n = Math.min(Math.floor(allowance), available - shown);
  return n > 0 ? {allowance: allowance - n, shown: shown + n} : {allowance, shown};
}

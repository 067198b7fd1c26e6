// @ts-check
/**
 * Times as people read them. The server sends UTC milliseconds; everything here renders them
 * in the viewer's own time zone and language, through the browser's `Intl.DateTimeFormat`.
 */

const clock = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit' });
const weekday = new Intl.DateTimeFormat(undefined, { weekday: 'long' });
const shortWeekday = new Intl.DateTimeFormat(undefined, { weekday: 'short' });
const dayInYear = new Intl.DateTimeFormat(undefined, {
  weekday: 'long',
  day: 'numeric',
  month: 'long',
});
const fullDay = new Intl.DateTimeFormat(undefined, {
  weekday: 'long',
  day: 'numeric',
  month: 'long',
  year: 'numeric',
});
const shortDate = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short' });
const complete = new Intl.DateTimeFormat(undefined, {
  dateStyle: 'full',
  timeStyle: 'short',
});

/** The viewer's IANA time zone, e.g. `Europe/Rome`. */
export const viewerTimeZone = clock.resolvedOptions().timeZone;

/**
 * A local calendar day, as a key that sorts and compares (`2025-11-24`).
 * @param {number} ts milliseconds since the Unix epoch
 */
export function dayKey(ts) {
  const d = new Date(ts);
  const month = String(d.getMonth() + 1).padStart(2, '0');
  const day = String(d.getDate()).padStart(2, '0');
  return `${d.getFullYear()}-${month}-${day}`;
}

/**
 * Days from the day of `ts` to the day of `now`, by the local calendar (0 today, 1 yesterday).
 * @param {number} ts
 * @param {number} now
 */
function daysAgo(ts, now) {
  const start = (/** @type {number} */ t) => {
    const d = new Date(t);
    return new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
  };
  return Math.round((start(now) - start(ts)) / 86_400_000);
}

/**
 * The time of day, `14:05` or `2:05 PM` as the viewer's language has it.
 * @param {number} ts
 */
export function formatTime(ts) {
  return clock.format(ts);
}

/**
 * A day separator's label: "Today", "Yesterday", "Monday 24 November" (with the year when it
 * is not this year's).
 * @param {number} ts
 * @param {number} [now]
 */
export function formatDay(ts, now = Date.now()) {
  const ago = daysAgo(ts, now);
  if (ago === 0) return 'Today';
  if (ago === 1) return 'Yesterday';
  if (ago > 1 && ago < 7) return weekday.format(ts);
  if (new Date(ts).getFullYear() === new Date(now).getFullYear()) return dayInYear.format(ts);
  return fullDay.format(ts);
}

/**
 * When a room was last active, short: the time today, "Yesterday", a weekday this week, else
 * a date.
 * @param {number} ts
 * @param {number} [now]
 */
export function formatActivity(ts, now = Date.now()) {
  const ago = daysAgo(ts, now);
  if (ago <= 0) return formatTime(ts);
  if (ago === 1) return 'Yesterday';
  if (ago < 7) return shortWeekday.format(ts);
  return shortDate.format(ts);
}

/**
 * Everything about a moment, for a tooltip: "Monday, 24 November 2025 at 14:05".
 * @param {number} ts
 */
export function formatFull(ts) {
  return complete.format(ts);
}

/**
 * The machine-readable form for a `<time datetime>` attribute.
 * @param {number} ts
 */
export function isoString(ts) {
  return new Date(ts).toISOString();
}

const sessionStart = new Intl.DateTimeFormat(undefined, {
  weekday: 'short',
  day: 'numeric',
  month: 'short',
  hour: 'numeric',
  minute: '2-digit',
});
const shortDay = new Intl.DateTimeFormat(undefined, {
  weekday: 'short',
  day: 'numeric',
  month: 'short',
});

/**
 * When a scheduled session starts, short and complete: "Tue 1 Dec, 16:00".
 * @param {number} ts
 */
export function formatStart(ts) {
  return sessionStart.format(ts);
}

/**
 * When something starts, relative to today: "at 16:00", "tomorrow at 16:00", "on Tue 1 Dec
 * at 16:00".
 * @param {number} ts
 * @param {number} [now]
 */
export function formatWhen(ts, now = Date.now()) {
  const ahead = -daysAgo(ts, now);
  if (ahead === 0) return `at ${formatTime(ts)}`;
  if (ahead === 1) return `tomorrow at ${formatTime(ts)}`;
  return `on ${shortDay.format(ts)} at ${formatTime(ts)}`;
}

/**
 * A moment in another time zone, for a tooltip: "16:00 Europe/Rome".
 * @param {number} ts
 * @param {string} timeZone an IANA zone
 */
export function formatInZone(ts, timeZone) {
  try {
    const there = new Intl.DateTimeFormat(undefined, {
      weekday: 'short',
      hour: 'numeric',
      minute: '2-digit',
      timeZone,
    });
    return `${there.format(ts)} ${timeZone}`;
  } catch {
    return timeZone;
  }
}

// keel::flow cron: the five-field cron schedules (minute hour day-of-month month
// day-of-week, always UTC) that start flows, when they fire next, and what a timer does
// about the fires it missed while the engine was down (its misfire policy).
//
//   Result<CronSchedule> schedule = parse_cron("30 2 * * MON-FRI");
//   if (!schedule) return schedule.error();    // "cron '...': hour: 25 is out of range 0-23"
//   std::optional<uint64_t> next_s = next_fire_after(*schedule, now_s);   // nullopt: never
//
//   // At start-up, for a timer whose recorded next fire was due_s:
//   MisfireRule rule{.policy = MisfirePolicy::catch_up, .catch_up_max = 3};
//   MisfireDecision decision = resolve_misfires(*schedule, due_s, now_s, rule);
//   for (uint64_t fire_s : decision.fire_times_s) start_flow(fire_s);
//   record_next_fire(decision.next_fire_s);
//
// Times are seconds since the Unix epoch, UTC, from 1970-01-01T00:00:00 to
// 9999-12-31T23:59:59 (cron_time_s_max); the process time zone is never consulted. Every
// function here is pure and deterministic: the ledger replays them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "error/result.h"

namespace keel::flow {

// The last second a schedule can fire in: 9999-12-31T23:59:59 UTC.
inline constexpr uint64_t cron_time_s_max = 253402300799;
// How far next_fire_after and previous_fire_before search: one whole Gregorian cycle,
// after which the calendar repeats itself weekday for weekday. A schedule that does not
// fire within it never fires, so nullopt is exact, not a guess.
inline constexpr uint32_t cron_search_years = 400;
// Longer expressions are refused: they are typed by people, and the bound keeps the
// messages that quote them short.
inline constexpr size_t cron_text_chars_max = 256;

// A parsed schedule: one bit per value that matches. Each field has at least one bit set.
// Texts that differ only in spelling ("MON-FRI" and "1-5", "*/20" and "0,20,40", "7" and
// "0" for Sunday) give equal schedules.
struct CronSchedule {
  uint64_t minutes = 0;        // bit m: minute m, 0-59
  uint32_t hours = 0;          // bit h: hour h, 0-23
  uint32_t days_of_month = 0;  // bit d: day d, 1-31
  uint16_t months = 0;         // bit m: month m, 1-12
  uint8_t days_of_week = 0;    // bit w: weekday w, 0-6, Sunday = 0 (7 is read as 0)
  // Vixie cron's day rule: when both day fields are restricted, a day matches if either
  // matches; when one of them is unrestricted, both must (so only the other one counts).
  // As in Vixie cron and cronie, a field is unrestricted when it starts with '*', so
  // "*/2" is unrestricted and "1-31" is restricted.
  bool day_of_month_restricted = false;
  bool day_of_week_restricted = false;

  friend bool operator==(const CronSchedule&, const CronSchedule&) = default;
};

// Parses a cron expression: five fields separated by spaces or tabs, or a macro alone.
// Each field is a comma-separated list of items; an item is '*', a value, or a range
// "a-b" (a <= b), and '*' or a range may take a step "/n" (1 <= n <= the field's count
// of values: 60, 24, 31, 12, 7). Months may be named JAN-DEC and weekdays SUN-SAT, in
// any case. Day-of-week takes 0-7, both 0 and 7 meaning Sunday. Macros: @yearly and
// @annually (0 0 1 1 *), @monthly (0 0 1 * *), @weekly (0 0 * * 0), @daily and
// @midnight (0 0 * * *), @hourly (0 * * * *).
// A schedule that can never fire ("0 0 30 2 *") parses; next_fire_after says so.
// Fails with one line "cron '<text>': <field>: <reason>", for example
// "cron '61 * * * *': minute: 61 is out of range 0-59" (or "cron '<text>': <reason>" when
// the problem is the whole expression, such as the number of fields).
Result<CronSchedule> parse_cron(std::string_view text);

// The canonical text of a schedule: five fields of numbers, each '*' when every value
// matches, "*/n" for a step from the first value, else a list of values and ranges
// ("0,15,30,45", "9-17", "1-5"). parse_cron(to_string(s)) == s for every s parse_cron
// makes.
std::string to_string(const CronSchedule& schedule);

// The first time the schedule fires strictly after after_s: a whole minute (second 0).
// nullopt when it does not fire within cron_search_years after after_s (so never) or not
// by cron_time_s_max. Skips whole months, days and hours that cannot match, so it costs
// a few hundred steps at most for a schedule that fires (under 2 us for Feb 29 on a
// Sunday, decades away), and the days of 400 years of its months for one that never fires
// (0.3 ms for "0 0 31 4,6,9,11 *").
std::optional<uint64_t> next_fire_after(const CronSchedule& schedule, uint64_t after_s);

// The last time the schedule fired strictly before before_s, searching back
// cron_search_years and not before the epoch. nullopt when there is none.
std::optional<uint64_t> previous_fire_before(const CronSchedule& schedule, uint64_t before_s);

// Civil dates (proleptic Gregorian, UTC), as the schedules see them. Exposed for tests and
// messages. days_from_civil(1970, 1, 1) == 0.
struct CivilTime {
  int32_t year = 1970;
  uint32_t month = 1;  // 1-12
  uint32_t day = 1;    // 1-31
  uint32_t hour = 0;
  uint32_t minute = 0;
  uint32_t second = 0;
};
int64_t days_from_civil(int32_t year, uint32_t month, uint32_t day);
CivilTime civil_from_seconds(uint64_t time_s);
// "2024-02-29T00:00:00Z".
std::string iso_string(uint64_t time_s);

// What a timer does about the fires that fell due while the engine was down.
enum class MisfirePolicy {
  skip,       // none of them; wait for the next one after now
  fire_once,  // one fire for all of them, at the latest missed time
  catch_up,   // each of them, oldest first, at most catch_up_max (the latest ones)
};

inline constexpr uint32_t catch_up_max_limit = 1024;
inline constexpr uint32_t misfire_grace_s_limit = 3600;

struct MisfireRule {
  MisfirePolicy policy = MisfirePolicy::fire_once;
  uint32_t catch_up_max = 1;  // 1..catch_up_max_limit; only catch_up reads it
  // A fire at most this late is on time, not missed, whatever the policy: an engine
  // restarted within the minute should not skip the fire it was about to make.
  // 0..misfire_grace_s_limit.
  uint32_t grace_s = 60;
};

struct MisfireDecision {
  // The scheduled times to fire now, oldest first. Each is a time the schedule fired at
  // (or due_s itself), so the flow it starts can say which occurrence it stands for.
  std::vector<uint64_t> fire_times_s;
  // True when some missed fires are not in fire_times_s (skipped or beyond the cap).
  bool dropped_some = false;
  // The first time the schedule fires strictly after now_s (or due_s if that is still
  // ahead): what the ledger records as the timer's next fire. nullopt: it never fires again.
  std::optional<uint64_t> next_fire_s;
};

// Decides what a timer does at now_s when its recorded next fire was due_s. The due fires
// are due_s (whether or not the schedule still matches it: a deploy may have changed the
// schedule) and every time the schedule fires in (due_s, now_s].
//   - due_s > now_s: nothing is due; next_fire_s = due_s.
//   - now_s - due_s <= grace_s: on time; every due fire fires (at most grace_s / 60 + 1).
//   - otherwise they were missed, and the policy keeps the latest k of them, oldest first:
//     k = 0 for skip, 1 for fire_once, catch_up_max for catch_up.
// Works in O(k) schedule steps, however many fires were missed.
// Asserts that the rule is within its limits (check_misfire_rule).
MisfireDecision resolve_misfires(const CronSchedule& schedule, uint64_t due_s, uint64_t now_s,
                                 const MisfireRule& rule);

// The spelling a config uses: "skip", "fire_once", "catch_up".
std::string_view to_string(MisfirePolicy policy);

// Reads the spelling above (exactly, in lower case). Fails with a reason only, for the
// config parser to place: "\"sometimes\" is not a misfire policy (skip, fire_once or catch_up)".
Result<MisfirePolicy> parse_misfire_policy(std::string_view text);

// Builds the rule a config describes: the policy, and the optional catch_up_max and
// grace_s keys. catch_up_max is required with catch_up and refused with the others, so a
// config that says "catch up 5" never quietly does something else. Fails with the key and
// the reason: "catch_up_max: 0 is out of range 1-1024", "catch_up_max: only applies to
// misfire policy catch_up", "catch_up_max: required by misfire policy catch_up".
Result<MisfireRule> make_misfire_rule(MisfirePolicy policy, std::optional<uint64_t> catch_up_max,
                                      std::optional<uint64_t> grace_s);

}  // namespace keel::flow

// Tests for engine/flow/cron.h: next fire times against a table of known schedules
// (computed independently with Python's datetime in UTC), a randomized comparison with a
// minute-by-minute search, the exact text of each parse error, the canonical text, and
// the misfire policies.
#include <gtest/gtest.h>

#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "engine/flow/cron.h"

namespace keel::flow {
namespace {

CronSchedule parsed(std::string_view text) {
  Result<CronSchedule> schedule = parse_cron(text);
  EXPECT_TRUE(schedule.ok()) << text << ": " << (schedule.ok() ? "" : schedule.error().message);
  return schedule.ok() ? *schedule : CronSchedule{};
}

std::string error_of(std::string_view text) {
  Result<CronSchedule> schedule = parse_cron(text);
  return schedule.ok() ? "parsed as " + to_string(*schedule) : schedule.error().message;
}

std::string iso_or_never(std::optional<uint64_t> time_s) { return time_s ? iso_string(*time_s) : "never"; }

struct KnownSchedule {
  std::string_view text;
  std::string_view after_iso;  // after_s, for the reader (and checked against iso_string)
  uint64_t after_s;
  std::vector<std::string_view> fires;  // the next three, or fewer when it stops firing
};

// Expected values from a brute-force search in Python (datetime, UTC, day by day), not
// from this code.
const std::vector<KnownSchedule>& known_schedules() {
  static const std::vector<KnownSchedule> table = {
      // every minute
      {"* * * * *", "2024-01-01T00:00:00Z", 1704067200, {"2024-01-01T00:01:00Z", "2024-01-01T00:02:00Z", "2024-01-01T00:03:00Z"}},
      // seconds are dropped: the next whole minute
      {"* * * * *", "2024-01-01T00:00:59Z", 1704067259, {"2024-01-01T00:01:00Z", "2024-01-01T00:02:00Z", "2024-01-01T00:03:00Z"}},
      // */15
      {"*/15 * * * *", "2024-03-10T10:07:30Z", 1710065250, {"2024-03-10T10:15:00Z", "2024-03-10T10:30:00Z", "2024-03-10T10:45:00Z"}},
      // hourly at :30, strictly after
      {"30 * * * *", "2024-03-10T10:30:00Z", 1710066600, {"2024-03-10T11:30:00Z", "2024-03-10T12:30:00Z", "2024-03-10T13:30:00Z"}},
      // daily 02:00 across the new year
      {"0 2 * * *", "2024-12-31T03:00:00Z", 1735614000, {"2025-01-01T02:00:00Z", "2025-01-02T02:00:00Z", "2025-01-03T02:00:00Z"}},
      // weekdays 9-17: Friday evening to Monday
      {"0 9-17 * * MON-FRI", "2024-05-17T17:30:00Z", 1715967000, {"2024-05-20T09:00:00Z", "2024-05-20T10:00:00Z", "2024-05-20T11:00:00Z"}},
      // the 31st: 30-day months are skipped
      {"0 0 31 * *", "2024-04-01T00:00:00Z", 1711929600, {"2024-05-31T00:00:00Z", "2024-07-31T00:00:00Z", "2024-08-31T00:00:00Z"}},
      // Feb 29: the next leap year
      {"0 0 29 2 *", "2024-03-01T00:00:00Z", 1709251200, {"2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z", "2036-02-29T00:00:00Z"}},
      // 2100 is not a leap year
      {"0 0 29 2 *", "2096-03-01T00:00:00Z", 3981398400, {"2104-02-29T00:00:00Z", "2108-02-29T00:00:00Z", "2112-02-29T00:00:00Z"}},
      // DOM and DOW both restricted: Fridays or the 13th
      {"0 12 13 * FRI", "2024-09-01T00:00:00Z", 1725148800, {"2024-09-06T12:00:00Z", "2024-09-13T12:00:00Z", "2024-09-20T12:00:00Z"}},
      // either rule, from the minute of a fire
      {"0 12 1 * MON", "2024-06-01T12:00:00Z", 1717243200, {"2024-06-03T12:00:00Z", "2024-06-10T12:00:00Z", "2024-06-17T12:00:00Z"}},
      // 7 is Sunday
      {"0 0 * * 7", "2024-06-01T00:00:00Z", 1717200000, {"2024-06-02T00:00:00Z", "2024-06-09T00:00:00Z", "2024-06-16T00:00:00Z"}},
      // day names in any case
      {"0 0 * * sun", "2024-06-01T00:00:00Z", 1717200000, {"2024-06-02T00:00:00Z", "2024-06-09T00:00:00Z", "2024-06-16T00:00:00Z"}},
      // month names; year rollover
      {"0 0 1 jan *", "2024-06-01T00:00:00Z", 1717200000, {"2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"}},
      // the last minute of the year
      {"59 23 31 12 *", "2024-12-31T23:59:00Z", 1735689540, {"2025-12-31T23:59:00Z", "2026-12-31T23:59:00Z", "2027-12-31T23:59:00Z"}},
      // month boundary
      {"0 0 1 * *", "2024-01-31T23:59:59Z", 1706745599, {"2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z", "2024-04-01T00:00:00Z"}},
      // Vixie: '*/2' counts as '*', so odd days AND Mondays
      {"0 0 */2 * MON", "2024-07-01T00:00:00Z", 1719792000, {"2024-07-15T00:00:00Z", "2024-07-29T00:00:00Z", "2024-08-05T00:00:00Z"}},
      // '1-31' is restricted: every day OR Mondays
      {"0 0 1-31 * MON", "2024-07-01T00:00:00Z", 1719792000, {"2024-07-02T00:00:00Z", "2024-07-03T00:00:00Z", "2024-07-04T00:00:00Z"}},
      // lists, ranges and a stepped range
      {"5,10-12,50-55/2 3 * * *", "2024-02-28T03:11:00Z", 1709089860, {"2024-02-28T03:12:00Z", "2024-02-28T03:50:00Z", "2024-02-28T03:52:00Z"}},
      // a stepped range of month names: Feb and Apr
      {"0 0 * FEB-APR/2 *", "2024-04-30T00:00:00Z", 1714435200, {"2025-02-01T00:00:00Z", "2025-02-02T00:00:00Z", "2025-02-03T00:00:00Z"}},
      // Feb 29 OR Mondays in February
      {"0 0 29 2 MON", "2024-01-01T00:00:00Z", 1704067200, {"2024-02-05T00:00:00Z", "2024-02-12T00:00:00Z", "2024-02-19T00:00:00Z"}},
      // */6 hours across Feb 29
      {"0 */6 * * *", "2024-02-29T20:00:00Z", 1709236800, {"2024-03-01T00:00:00Z", "2024-03-01T06:00:00Z", "2024-03-01T12:00:00Z"}},
      // monthly, strictly after a fire
      {"15 14 1 * *", "2023-12-01T14:15:00Z", 1701440100, {"2024-01-01T14:15:00Z", "2024-02-01T14:15:00Z", "2024-03-01T14:15:00Z"}},
      // a range ending in 7
      {"0 0 * * 5-7", "2024-06-03T00:00:00Z", 1717372800, {"2024-06-07T00:00:00Z", "2024-06-08T00:00:00Z", "2024-06-09T00:00:00Z"}},
      // Tuesdays OR days 8-14
      {"0 4 8-14 * 2", "2024-10-06T00:00:00Z", 1728172800, {"2024-10-08T04:00:00Z", "2024-10-09T04:00:00Z", "2024-10-10T04:00:00Z"}},
      // '*/7' is Sunday and unrestricted
      {"0 0 * * */7", "2024-06-01T00:00:00Z", 1717200000, {"2024-06-02T00:00:00Z", "2024-06-09T00:00:00Z", "2024-06-16T00:00:00Z"}},
      // Feb 29 AND Sunday ('*/7' is unrestricted): decades apart
      {"0 0 29 2 */7", "2024-01-01T00:00:00Z", 1704067200, {"2032-02-29T00:00:00Z", "2060-02-29T00:00:00Z", "2088-02-29T00:00:00Z"}},
      // past 2100's missing leap day
      {"0 0 29 2 */7", "2032-03-01T00:00:00Z", 1961712000, {"2060-02-29T00:00:00Z", "2088-02-29T00:00:00Z", "2128-02-29T00:00:00Z"}},
      // @hourly
      {"@hourly", "2024-06-01T23:30:00Z", 1717284600, {"2024-06-02T00:00:00Z", "2024-06-02T01:00:00Z", "2024-06-02T02:00:00Z"}},
      // @daily
      {"@daily", "2024-02-28T00:00:00Z", 1709078400, {"2024-02-29T00:00:00Z", "2024-03-01T00:00:00Z", "2024-03-02T00:00:00Z"}},
      // @midnight
      {"@midnight", "2024-02-28T00:00:00Z", 1709078400, {"2024-02-29T00:00:00Z", "2024-03-01T00:00:00Z", "2024-03-02T00:00:00Z"}},
      // @weekly (Sunday)
      {"@weekly", "2024-06-01T00:00:00Z", 1717200000, {"2024-06-02T00:00:00Z", "2024-06-09T00:00:00Z", "2024-06-16T00:00:00Z"}},
      // @monthly
      {"@monthly", "2024-11-15T08:00:00Z", 1731657600, {"2024-12-01T00:00:00Z", "2025-01-01T00:00:00Z", "2025-02-01T00:00:00Z"}},
      // @yearly
      {"@yearly", "2024-11-15T08:00:00Z", 1731657600, {"2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"}},
      // @annually from the epoch itself
      {"@annually", "1970-01-01T00:00:00Z", 0, {"1971-01-01T00:00:00Z", "1972-01-01T00:00:00Z", "1973-01-01T00:00:00Z"}},
      // strictly after 0
      {"0 0 1 1 *", "1970-01-01T00:00:00Z", 0, {"1971-01-01T00:00:00Z", "1972-01-01T00:00:00Z", "1973-01-01T00:00:00Z"}},
      // 1-59/58 is 1 and 59; into 2100
      {"1-59/58 0 1 1 *", "2099-12-31T23:59:00Z", 4102444740, {"2100-01-01T00:01:00Z", "2100-01-01T00:59:00Z", "2101-01-01T00:01:00Z"}},
      // mixed-case day list
      {"30 6 * * mOn,wEd,FRI", "2024-08-30T06:30:00Z", 1724999400, {"2024-09-02T06:30:00Z", "2024-09-04T06:30:00Z", "2024-09-06T06:30:00Z"}},
      // 28-31 in a 28-day February
      {"0 0 28-31 * *", "2023-02-27T12:00:00Z", 1677499200, {"2023-02-28T00:00:00Z", "2023-03-28T00:00:00Z", "2023-03-29T00:00:00Z"}},
      // never: Feb 30
      {"0 0 30 2 *", "2024-01-01T00:00:00Z", 1704067200, {}},
      // never: the 31st of 30-day months
      {"0 0 31 4,6,9,11 *", "2024-01-01T00:00:00Z", 1704067200, {}},
      // past 9999-12-31: nullopt
      {"0 0 1 1 *", "9999-06-01T00:00:00Z", 253383811200, {}},
      // the last minute there is
      {"59 23 31 12 *", "9999-12-31T00:00:00Z", 253402214400, {"9999-12-31T23:59:00Z"}},
  };
  return table;
}

TEST(CronNextFire, KnownSchedules) {
  ASSERT_GE(known_schedules().size(), 25u);
  for (const KnownSchedule& known : known_schedules()) {
    SCOPED_TRACE(std::string(known.text) + " after " + std::string(known.after_iso));
    ASSERT_EQ(iso_string(known.after_s), known.after_iso);
    CronSchedule schedule = parsed(known.text);
    uint64_t after_s = known.after_s;
    std::vector<std::string> fires;
    for (size_t i = 0; i < 3; ++i) {
      std::optional<uint64_t> next_s = next_fire_after(schedule, after_s);
      if (!next_s) break;
      EXPECT_EQ(*next_s % 60, 0u);
      fires.push_back(iso_string(*next_s));
      after_s = *next_s;
    }
    EXPECT_EQ(fires, std::vector<std::string>(known.fires.begin(), known.fires.end()));
  }
}

// previous_fire_before walks the same table backwards: from each fire to the one before.
TEST(CronPreviousFire, WalksTheTableBackwards) {
  for (const KnownSchedule& known : known_schedules()) {
    SCOPED_TRACE(known.text);
    CronSchedule schedule = parsed(known.text);
    std::vector<uint64_t> fires_s;
    for (std::optional<uint64_t> next_s = next_fire_after(schedule, known.after_s); next_s && fires_s.size() < 3;
         next_s = next_fire_after(schedule, *next_s))
      fires_s.push_back(*next_s);
    for (size_t i = 1; i < fires_s.size(); ++i) {
      EXPECT_EQ(iso_or_never(previous_fire_before(schedule, fires_s[i])), iso_string(fires_s[i - 1]));
      // Any second after a fire, up to the next one, has that fire as its previous one.
      EXPECT_EQ(iso_or_never(previous_fire_before(schedule, fires_s[i - 1] + 1)), iso_string(fires_s[i - 1]));
    }
    if (!fires_s.empty()) {
      std::optional<uint64_t> before_s = previous_fire_before(schedule, fires_s[0]);
      if (before_s) {
        EXPECT_LE(*before_s, known.after_s);
      }
    }
  }
  // Nothing fires before the epoch, or ever for Feb 30.
  EXPECT_EQ(previous_fire_before(parsed("* * * * *"), 0), std::nullopt);
  EXPECT_EQ(previous_fire_before(parsed("* * * * *"), 1), std::optional<uint64_t>(0));
  EXPECT_EQ(previous_fire_before(parsed("* * * * *"), 60), std::optional<uint64_t>(0));
  EXPECT_EQ(previous_fire_before(parsed("0 0 1 1 *"), 1704067200), std::optional<uint64_t>(1672531200));
  EXPECT_EQ(previous_fire_before(parsed("0 0 30 2 *"), 1704067200), std::nullopt);
  EXPECT_EQ(iso_or_never(previous_fire_before(parsed("59 23 31 12 *"), UINT64_MAX)), "9999-12-31T23:59:00Z");
  EXPECT_EQ(next_fire_after(parsed("* * * * *"), cron_time_s_max), std::nullopt);
  EXPECT_EQ(next_fire_after(parsed("* * * * *"), UINT64_MAX), std::nullopt);
}

// Random schedules against a plain minute-by-minute search over four days either side of
// a random start between 1970 and 2200.
TEST(CronNextFire, MatchesAMinuteByMinuteSearch) {
  uint64_t seed = std::random_device{}();
  std::printf("seed %llu\n", (unsigned long long)seed);
  std::mt19937_64 random(seed);
  auto random_mask = [&](uint32_t first, uint32_t last, uint32_t percent) {
    uint64_t mask = 0;
    while (mask == 0) {
      for (uint32_t value = first; value <= last; ++value)
        if (random() % 100 < percent) mask |= uint64_t(1) << value;
    }
    return mask;
  };
  auto matches = [](const CronSchedule& schedule, uint64_t time_s) {
    CivilTime civil = civil_from_seconds(time_s);
    uint32_t weekday = uint32_t((time_s / 86400 + 4) % 7);  // 1970-01-01 was a Thursday
    bool by_day = (schedule.days_of_month >> civil.day) & 1, by_weekday = (schedule.days_of_week >> weekday) & 1;
    bool day = schedule.day_of_month_restricted && schedule.day_of_week_restricted ? by_day || by_weekday
                                                                                    : by_day && by_weekday;
    return day && ((schedule.minutes >> civil.minute) & 1) && ((schedule.hours >> civil.hour) & 1) &&
           ((schedule.months >> civil.month) & 1);
  };
  constexpr uint64_t window_minutes = 4 * 24 * 60;
  for (int round = 0; round < 300; ++round) {
    CronSchedule schedule;
    schedule.minutes = random_mask(0, 59, 1 + random() % 20);
    schedule.hours = uint32_t(random_mask(0, 23, 5 + random() % 40));
    schedule.days_of_month = uint32_t(random_mask(1, 31, 5 + random() % 60));
    schedule.months = uint16_t(random_mask(1, 12, 30 + random() % 71));
    schedule.days_of_week = uint8_t(random_mask(0, 6, 10 + random() % 60));
    schedule.day_of_month_restricted = random() % 2;
    schedule.day_of_week_restricted = random() % 2;
    // As parse_cron makes them: an unrestricted day field starts with '*', which holds the
    // field's first value.
    if (!schedule.day_of_month_restricted) schedule.days_of_month |= 1u << 1;
    if (!schedule.day_of_week_restricted) schedule.days_of_week |= 1u << 0;
    const uint64_t start_s = random() % 7258118400;  // up to 2200-01-01
    SCOPED_TRACE(to_string(schedule) + " from " + iso_string(start_s));
    std::optional<uint64_t> expected_next_s, expected_previous_s;
    for (uint64_t minute = start_s / 60 + 1; minute <= start_s / 60 + window_minutes && !expected_next_s; ++minute)
      if (matches(schedule, minute * 60)) expected_next_s = minute * 60;
    for (uint64_t minute = (start_s - 1) / 60; minute + window_minutes > start_s / 60 && !expected_previous_s;
         --minute)
      if (matches(schedule, minute * 60)) expected_previous_s = minute * 60;
    std::optional<uint64_t> next_s = next_fire_after(schedule, start_s);
    std::optional<uint64_t> previous_s = previous_fire_before(schedule, start_s);
    if (expected_next_s) {
      EXPECT_EQ(iso_or_never(next_s), iso_string(*expected_next_s));
    } else if (next_s) {
      EXPECT_GT(*next_s, (start_s / 60 + window_minutes) * 60);
    }
    if (expected_previous_s) {
      EXPECT_EQ(iso_or_never(previous_s), iso_string(*expected_previous_s));
    } else if (previous_s) {
      EXPECT_LT(*previous_s, start_s - window_minutes * 60);
    }
    // The canonical text reads back as the same schedule.
    EXPECT_EQ(parsed(to_string(schedule)), schedule);
  }
}

TEST(CronCalendar, CivilDatesMatchKnownEpochSeconds) {
  // Epoch seconds from Python's datetime (UTC).
  EXPECT_EQ(iso_string(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(iso_string(951782400), "2000-02-29T00:00:00Z");
  EXPECT_EQ(iso_string(4107542400), "2100-03-01T00:00:00Z");
  EXPECT_EQ(iso_string(1709210096), "2024-02-29T12:34:56Z");
  EXPECT_EQ(iso_string(946684799), "1999-12-31T23:59:59Z");
  EXPECT_EQ(iso_string(2147483648), "2038-01-19T03:14:08Z");
  EXPECT_EQ(iso_string(cron_time_s_max), "9999-12-31T23:59:59Z");
  EXPECT_EQ(days_from_civil(1970, 1, 1), 0);
  EXPECT_EQ(days_from_civil(1969, 12, 31), -1);
  EXPECT_EQ(days_from_civil(2000, 3, 1), 11017);
  EXPECT_EQ(days_from_civil(1, 1, 1), -719162);
  EXPECT_EQ(days_from_civil(2100, 3, 1) * 86400, 4107542400);
  // Every day from 1960 to 2500 round-trips, one after the other.
  int64_t days = days_from_civil(1970, 1, 1);
  for (uint64_t time_s = 0; time_s < 16725225600; time_s += 86400, ++days) {
    CivilTime civil = civil_from_seconds(time_s + 86399);
    ASSERT_EQ(days_from_civil(civil.year, civil.month, civil.day), days) << time_s;
    ASSERT_EQ(civil.hour * 3600 + civil.minute * 60 + civil.second, 86399u);
  }
}

TEST(CronParse, FieldsBecomeBitmasks) {
  CronSchedule schedule = parsed("*/15 9-17 1,15 JAN-MAR/2 MON-FRI");
  EXPECT_EQ(schedule.minutes, (1ull << 0) | (1ull << 15) | (1ull << 30) | (1ull << 45));
  EXPECT_EQ(schedule.hours, 0x3fe00u);
  EXPECT_EQ(schedule.days_of_month, (1u << 1) | (1u << 15));
  EXPECT_EQ(schedule.months, (1u << 1) | (1u << 3));
  EXPECT_EQ(schedule.days_of_week, 0x3eu);
  EXPECT_TRUE(schedule.day_of_month_restricted);
  EXPECT_TRUE(schedule.day_of_week_restricted);

  CronSchedule every = parsed("* * * * *");
  EXPECT_EQ(every.minutes, (1ull << 60) - 1);
  EXPECT_EQ(every.hours, (1u << 24) - 1);
  EXPECT_EQ(every.days_of_month, 0xfffffffeu);
  EXPECT_EQ(every.months, 0x1ffeu);
  EXPECT_EQ(every.days_of_week, 0x7fu);
  EXPECT_FALSE(every.day_of_month_restricted);
  EXPECT_FALSE(every.day_of_week_restricted);

  // 0 and 7 are both Sunday; names in any case; tabs and extra spaces separate fields.
  EXPECT_EQ(parsed("0 0 * * 7"), parsed("0 0 * * 0"));
  EXPECT_EQ(parsed("0 0 * * 5-7"), parsed("0 0 * * 0,5,6"));
  EXPECT_EQ(parsed("0 0 * * sun,Mon,TUE"), parsed("0 0 * * 0-2"));
  EXPECT_EQ(parsed("0 0 1 dec *"), parsed("0 0 1 12 *"));
  EXPECT_EQ(parsed("  0\t0  1   12 *  "), parsed("0 0 1 12 *"));
  EXPECT_EQ(parsed("0-59/20 * * * *"), parsed("0,20,40 * * * *"));
  EXPECT_EQ(parsed("07 * * * *").minutes, 1ull << 7);
  EXPECT_EQ(parsed("*/007 * * * *"), parsed("*/7 * * * *"));
  // The macros.
  EXPECT_EQ(parsed("@yearly"), parsed("0 0 1 1 *"));
  EXPECT_EQ(parsed("@annually"), parsed("0 0 1 1 *"));
  EXPECT_EQ(parsed("@monthly"), parsed("0 0 1 * *"));
  EXPECT_EQ(parsed("@weekly"), parsed("0 0 * * 0"));
  EXPECT_EQ(parsed("@daily"), parsed("0 0 * * *"));
  EXPECT_EQ(parsed("@midnight"), parsed("0 0 * * *"));
  EXPECT_EQ(parsed("@HOURLY"), parsed("0 * * * *"));
  // Vixie cron's rule: a day field starting with '*' is unrestricted, even with a step.
  EXPECT_FALSE(parsed("0 0 */2 * MON").day_of_month_restricted);
  EXPECT_TRUE(parsed("0 0 1-31 * MON").day_of_month_restricted);
  EXPECT_FALSE(parsed("0 0 * * */2").day_of_week_restricted);
  EXPECT_TRUE(parsed("0 0 * * 0-7").day_of_week_restricted);
}

TEST(CronParse, EachErrorSaysWhatAndWhere) {
  const std::pair<std::string_view, std::string_view> cases[] = {
      // Out of range, per field.
      {"61 * * * *", "cron '61 * * * *': minute: 61 is out of range 0-59"},
      {"* 24 * * *", "cron '* 24 * * *': hour: 24 is out of range 0-23"},
      {"0 0 0 * *", "cron '0 0 0 * *': day-of-month: 0 is out of range 1-31"},
      {"0 0 32 * *", "cron '0 0 32 * *': day-of-month: 32 is out of range 1-31"},
      {"0 0 * 13 *", "cron '0 0 * 13 *': month: 13 is out of range 1-12"},
      {"0 0 * * 8", "cron '0 0 * * 8': day-of-week: 8 is out of range 0-7"},
      {"0 0-60 * * *", "cron '0 0-60 * * *': hour: 60 is out of range 0-23"},
      {"99999999999999999999 * * * *",
       "cron '99999999999999999999 * * * *': minute: 99999999999999999999 is out of range 0-59"},
      // Steps.
      {"*/0 * * * *", "cron '*/0 * * * *': minute: step 0 is out of range 1-60"},
      {"0 */25 * * *", "cron '0 */25 * * *': hour: step 25 is out of range 1-24"},
      {"0 0 * * 1-5/8", "cron '0 0 * * 1-5/8': day-of-week: step 8 is out of range 1-7"},
      {"0 */99999999999999999999 * * *",
       "cron '0 */99999999999999999999 * * *': hour: step 99999999999999999999 is out of range 1-24"},
      {"*/x * * * *", "cron '*/x * * * *': minute: step 'x' is not a number"},
      {"*/ * * * *", "cron '*/ * * * *': minute: step '' is not a number"},
      {"*/-1 * * * *", "cron '*/-1 * * * *': minute: step '-1' is not a number"},
      {"5/15 * * * *", "cron '5/15 * * * *': minute: a step needs '*' or a range before it: '5/15'"},
      // Ranges.
      {"0 17-9 * * *", "cron '0 17-9 * * *': hour: range '17-9' runs backwards"},
      {"0 0 * * SAT-SUN", "cron '0 0 * * SAT-SUN': day-of-week: range 'SAT-SUN' runs backwards"},
      {"-5 * * * *", "cron '-5 * * * *': minute: missing value in '-5'"},
      {"5- * * * *", "cron '5- * * * *': minute: missing value in '5-'"},
      {"1-2-3 * * * *", "cron '1-2-3 * * * *': minute: '2-3' is not a number"},
      // Lists.
      {"1,,2 * * * *", "cron '1,,2 * * * *': minute: empty list item in '1,,2'"},
      {"1, * * * *", "cron '1, * * * *': minute: empty list item in '1,'"},
      // Garbage.
      {"x * * * *", "cron 'x * * * *': minute: 'x' is not a number"},
      {"0 0 ? * *", "cron '0 0 ? * *': day-of-month: '?' is not a number"},
      {"0 0 L * *", "cron '0 0 L * *': day-of-month: 'L' is not a number"},
      {"0 0 JAN * *", "cron '0 0 JAN * *': day-of-month: 'JAN' is not a number"},
      {"0 0 * FOO *", "cron '0 0 * FOO *': month: 'FOO' is not a number or a month name (JAN-DEC)"},
      {"0 0 * * MONDAY", "cron '0 0 * * MONDAY': day-of-week: 'MONDAY' is not a number or a day name (SUN-SAT)"},
      {"0 0 * * 1.5", "cron '0 0 * * 1.5': day-of-week: '1.5' is not a number or a day name (SUN-SAT)"},
      {"0\x01 * * * *", "cron '0\\x01 * * * *': minute: '0\\x01' is not a number"},
      {"0 0 * * caf\xc3\xa9", "cron '0 0 * * caf\\xc3\\xa9': day-of-week: 'caf\\xc3\\xa9' is not a number or a day "
                              "name (SUN-SAT)"},
      // The shape of the whole.
      {"", "cron '': empty; expected 5 fields (minute hour day-of-month month day-of-week) or a macro such as @daily"},
      {" \t ", "cron ' \\x09 ': empty; expected 5 fields (minute hour day-of-month month day-of-week) or a macro "
               "such as @daily"},
      {"* * * *", "cron '* * * *': expected 5 fields (minute hour day-of-month month day-of-week), found 4"},
      {"0 0 * * * 2024", "cron '0 0 * * * 2024': expected 5 fields (minute hour day-of-month month day-of-week), "
                         "found 6"},
      {"0 0 * * *\n", "cron '0 0 * * *\\x0a': day-of-week: '*\\x0a' is not a number or a day name (SUN-SAT)"},
      // Macros.
      {"@reboot", "cron '@reboot': @reboot is not supported: a timer needs a time"},
      {"@every", "cron '@every': unknown macro '@every' (@yearly, @annually, @monthly, @weekly, @daily, @midnight "
                 "or @hourly)"},
      {"@daily 5", "cron '@daily 5': a macro stands alone, without fields after it"},
  };
  for (const auto& [text, message] : cases) EXPECT_EQ(error_of(text), message) << text;
  std::string long_text(300, '*');
  EXPECT_EQ(error_of(long_text), "cron '********************************...': longer than 256 characters");
}

TEST(CronParse, CanonicalTextReadsBackTheSame) {
  const std::pair<std::string_view, std::string_view> cases[] = {
      {"* * * * *", "* * * * *"},
      {"*/15 * * * *", "*/15 * * * *"},
      {"0,15,30,45 * * * *", "*/15 * * * *"},
      {"0 9-17 * * MON-FRI", "0 9-17 * * 1-5"},
      {"5,10-12,50-55/2 3 * * *", "5,10-12,50,52,54 3 * * *"},
      {"0 0 29 2 *", "0 0 29 2 *"},
      {"0 0 * FEB-APR/2 *", "0 0 * 2,4 *"},
      {"0 0 * * 7", "0 0 * * 0"},
      {"0 0 * * 5-7", "0 0 * * 0,5-6"},
      {"0 0 1-31 * MON", "0 0 1-31 * 1"},
      {"0 0 */2 * MON", "0 0 */2 * 1"},
      {"0 0 1-31/2 * MON", "0 0 1-31/2 * 1"},
      {"0 0 *,4 * MON", "0 0 * * 1"},
      {"0 0 */2,4 * MON", "0 0 */31,3-5,7,9,11,13,15,17,19,21,23,25,27,29,31 * 1"},
      {"0 0 * * */7", "0 0 * * */7"},
      {"0 0 * * 0-6", "0 0 * * 0-6"},
      {"0 0 * * */2", "0 0 * * */2"},
      {"@weekly", "0 0 * * 0"},
      {"@hourly", "0 * * * *"},
      {"0 0 * 1-12 *", "0 0 * * *"},
      {"0,30 0-23/12 * * *", "*/30 */12 * * *"},
  };
  for (const auto& [text, canonical] : cases) {
    CronSchedule schedule = parsed(text);
    EXPECT_EQ(to_string(schedule), canonical) << text;
    EXPECT_EQ(parsed(to_string(schedule)), schedule) << text;
  }
}

// ---- Misfires ----

// 2024-01-01T<hour>:<minute>:<second>Z (2024-01-01T00:00:00Z is 1704067200).
uint64_t on_new_year_2024(uint64_t hour, uint64_t minute = 0, uint64_t second = 0) {
  return 1704067200 + hour * 3600 + minute * 60 + second;
}

std::vector<std::string> isos(const std::vector<uint64_t>& times_s) {
  std::vector<std::string> out;
  for (uint64_t time_s : times_s) out.push_back(iso_string(time_s));
  return out;
}

MisfireRule rule_of(MisfirePolicy policy, uint32_t catch_up_max = 1, uint32_t grace_s = 60) {
  return MisfireRule{.policy = policy, .catch_up_max = catch_up_max, .grace_s = grace_s};
}

TEST(CronMisfire, PoliciesAfterDowntime) {
  // Hourly; the engine stopped before 10:00 and starts again at 15:30: six fires missed.
  CronSchedule hourly = parsed("0 * * * *");
  const uint64_t due_s = on_new_year_2024(10), now_s = on_new_year_2024(15, 30);
  const std::string next = "2024-01-01T16:00:00Z";

  MisfireDecision skip = resolve_misfires(hourly, due_s, now_s, rule_of(MisfirePolicy::skip));
  EXPECT_EQ(isos(skip.fire_times_s), std::vector<std::string>{});
  EXPECT_TRUE(skip.dropped_some);
  EXPECT_EQ(iso_or_never(skip.next_fire_s), next);

  MisfireDecision once = resolve_misfires(hourly, due_s, now_s, rule_of(MisfirePolicy::fire_once));
  EXPECT_EQ(isos(once.fire_times_s), std::vector<std::string>{"2024-01-01T15:00:00Z"});
  EXPECT_TRUE(once.dropped_some);
  EXPECT_EQ(iso_or_never(once.next_fire_s), next);

  // Catching up at most 3 keeps the latest 3, oldest first.
  MisfireDecision three = resolve_misfires(hourly, due_s, now_s, rule_of(MisfirePolicy::catch_up, 3));
  EXPECT_EQ(isos(three.fire_times_s),
            (std::vector<std::string>{"2024-01-01T13:00:00Z", "2024-01-01T14:00:00Z", "2024-01-01T15:00:00Z"}));
  EXPECT_TRUE(three.dropped_some);
  EXPECT_EQ(iso_or_never(three.next_fire_s), next);

  // At the cap exactly, one under it, and with room to spare.
  const std::vector<std::string> all_six = {"2024-01-01T10:00:00Z", "2024-01-01T11:00:00Z", "2024-01-01T12:00:00Z",
                                            "2024-01-01T13:00:00Z", "2024-01-01T14:00:00Z", "2024-01-01T15:00:00Z"};
  MisfireDecision six = resolve_misfires(hourly, due_s, now_s, rule_of(MisfirePolicy::catch_up, 6));
  EXPECT_EQ(isos(six.fire_times_s), all_six);
  EXPECT_FALSE(six.dropped_some);
  MisfireDecision five = resolve_misfires(hourly, due_s, now_s, rule_of(MisfirePolicy::catch_up, 5));
  EXPECT_EQ(isos(five.fire_times_s), std::vector<std::string>(all_six.begin() + 1, all_six.end()));
  EXPECT_TRUE(five.dropped_some);
  MisfireDecision ten = resolve_misfires(hourly, due_s, now_s, rule_of(MisfirePolicy::catch_up, 10));
  EXPECT_EQ(isos(ten.fire_times_s), all_six);
  EXPECT_FALSE(ten.dropped_some);
  EXPECT_EQ(iso_or_never(ten.next_fire_s), next);
  // A fire at now_s itself is due, not missed in the future.
  MisfireDecision at_now = resolve_misfires(hourly, due_s, on_new_year_2024(15), rule_of(MisfirePolicy::catch_up, 10));
  EXPECT_EQ(isos(at_now.fire_times_s), all_six);
  EXPECT_EQ(iso_or_never(at_now.next_fire_s), next);
}

TEST(CronMisfire, NothingMissed) {
  CronSchedule hourly = parsed("0 * * * *");
  for (MisfirePolicy policy : {MisfirePolicy::skip, MisfirePolicy::fire_once, MisfirePolicy::catch_up}) {
    SCOPED_TRACE(std::string(to_string(policy)));
    // Not yet due: the recorded time stays the next fire.
    MisfireDecision early = resolve_misfires(hourly, on_new_year_2024(16), on_new_year_2024(15, 30), rule_of(policy, 4));
    EXPECT_EQ(early.fire_times_s, std::vector<uint64_t>{});
    EXPECT_FALSE(early.dropped_some);
    EXPECT_EQ(early.next_fire_s, std::optional<uint64_t>(on_new_year_2024(16)));
    // Due a few seconds ago, within the grace: on time, whatever the policy.
    MisfireDecision late = resolve_misfires(hourly, on_new_year_2024(15), on_new_year_2024(15, 0, 59), rule_of(policy, 4));
    EXPECT_EQ(isos(late.fire_times_s), std::vector<std::string>{"2024-01-01T15:00:00Z"});
    EXPECT_FALSE(late.dropped_some);
    EXPECT_EQ(iso_or_never(late.next_fire_s), "2024-01-01T16:00:00Z");
    // The grace's edge: 60 s late is on time, 61 s is missed.
    MisfireDecision edge = resolve_misfires(hourly, on_new_year_2024(15), on_new_year_2024(15, 1), rule_of(policy, 4));
    EXPECT_EQ(edge.fire_times_s.size(), 1u);
  }
  MisfireDecision missed = resolve_misfires(hourly, on_new_year_2024(15), on_new_year_2024(15, 1, 1),
                                            rule_of(MisfirePolicy::skip));
  EXPECT_EQ(missed.fire_times_s, std::vector<uint64_t>{});
  EXPECT_TRUE(missed.dropped_some);
  // No grace at all: a second late is missed.
  MisfireDecision strict = resolve_misfires(hourly, on_new_year_2024(15), on_new_year_2024(15, 0, 1),
                                            rule_of(MisfirePolicy::skip, 1, 0));
  EXPECT_EQ(strict.fire_times_s, std::vector<uint64_t>{});
  EXPECT_TRUE(strict.dropped_some);
  // Within the grace every due fire fires, even several of an every-minute schedule.
  MisfireDecision minutes = resolve_misfires(parsed("* * * * *"), on_new_year_2024(10), on_new_year_2024(10, 2, 30),
                                             rule_of(MisfirePolicy::skip, 1, 180));
  EXPECT_EQ(isos(minutes.fire_times_s), (std::vector<std::string>{"2024-01-01T10:00:00Z", "2024-01-01T10:01:00Z",
                                                                  "2024-01-01T10:02:00Z"}));
  EXPECT_EQ(iso_or_never(minutes.next_fire_s), "2024-01-01T10:03:00Z");
  // The largest grace on an every-minute schedule: 61 fires, none dropped.
  MisfireDecision widest = resolve_misfires(parsed("* * * * *"), on_new_year_2024(10), on_new_year_2024(11),
                                            rule_of(MisfirePolicy::skip, 1, misfire_grace_s_limit));
  EXPECT_EQ(widest.fire_times_s.size(), 61u);
  EXPECT_FALSE(widest.dropped_some);
}

TEST(CronMisfire, RecordedTimeOffTheScheduleStillCounts) {
  // A deploy moved the schedule from :30 to :00; the recorded 10:30 fire is still owed.
  CronSchedule hourly = parsed("0 * * * *");
  MisfireDecision all = resolve_misfires(hourly, on_new_year_2024(10, 30), on_new_year_2024(12, 45),
                                         rule_of(MisfirePolicy::catch_up, 10));
  EXPECT_EQ(isos(all.fire_times_s),
            (std::vector<std::string>{"2024-01-01T10:30:00Z", "2024-01-01T11:00:00Z", "2024-01-01T12:00:00Z"}));
  EXPECT_FALSE(all.dropped_some);
  // A schedule that never fires again: the owed fire, and no next one.
  MisfireDecision last = resolve_misfires(parsed("0 0 30 2 *"), on_new_year_2024(10), on_new_year_2024(12),
                                          rule_of(MisfirePolicy::fire_once));
  EXPECT_EQ(isos(last.fire_times_s), std::vector<std::string>{"2024-01-01T10:00:00Z"});
  EXPECT_FALSE(last.dropped_some);
  EXPECT_EQ(last.next_fire_s, std::nullopt);
}

TEST(CronMisfire, YearsOfDowntimeStayBounded) {
  // Every minute for four years (2.1 million fires): the work and the answer stay at the cap.
  const uint64_t due_s = 1577836800;  // 2020-01-01T00:00:00Z
  const uint64_t now_s = on_new_year_2024(0, 0, 30);
  MisfireDecision decision = resolve_misfires(parsed("* * * * *"), due_s, now_s,
                                              rule_of(MisfirePolicy::catch_up, catch_up_max_limit));
  ASSERT_EQ(decision.fire_times_s.size(), catch_up_max_limit);
  EXPECT_EQ(iso_string(decision.fire_times_s.front()), "2023-12-31T06:57:00Z");
  EXPECT_EQ(iso_string(decision.fire_times_s.back()), "2024-01-01T00:00:00Z");
  for (size_t i = 1; i < decision.fire_times_s.size(); ++i)
    ASSERT_EQ(decision.fire_times_s[i], decision.fire_times_s[i - 1] + 60);
  EXPECT_TRUE(decision.dropped_some);
  EXPECT_EQ(iso_or_never(decision.next_fire_s), "2024-01-01T00:01:00Z");
}

TEST(CronMisfire, PolicyTextAndRule) {
  EXPECT_EQ(*parse_misfire_policy("skip"), MisfirePolicy::skip);
  EXPECT_EQ(*parse_misfire_policy("fire_once"), MisfirePolicy::fire_once);
  EXPECT_EQ(*parse_misfire_policy("catch_up"), MisfirePolicy::catch_up);
  for (MisfirePolicy policy : {MisfirePolicy::skip, MisfirePolicy::fire_once, MisfirePolicy::catch_up})
    EXPECT_EQ(*parse_misfire_policy(to_string(policy)), policy);
  EXPECT_EQ(parse_misfire_policy("Skip").error().message,
            "\"Skip\" is not a misfire policy (skip, fire_once or catch_up)");
  EXPECT_EQ(parse_misfire_policy("").error().message, "\"\" is not a misfire policy (skip, fire_once or catch_up)");
  EXPECT_EQ(parse_misfire_policy("catch-up\n").error().message,
            "\"catch-up\\x0a\" is not a misfire policy (skip, fire_once or catch_up)");

  Result<MisfireRule> catch_up = make_misfire_rule(MisfirePolicy::catch_up, 5, std::nullopt);
  ASSERT_TRUE(catch_up.ok());
  EXPECT_EQ(catch_up->policy, MisfirePolicy::catch_up);
  EXPECT_EQ(catch_up->catch_up_max, 5u);
  EXPECT_EQ(catch_up->grace_s, 60u);
  Result<MisfireRule> skip = make_misfire_rule(MisfirePolicy::skip, std::nullopt, 0);
  ASSERT_TRUE(skip.ok());
  EXPECT_EQ(skip->policy, MisfirePolicy::skip);
  EXPECT_EQ(skip->grace_s, 0u);
  EXPECT_TRUE(make_misfire_rule(MisfirePolicy::catch_up, catch_up_max_limit, misfire_grace_s_limit).ok());

  EXPECT_EQ(make_misfire_rule(MisfirePolicy::catch_up, std::nullopt, std::nullopt).error().message,
            "catch_up_max: required by misfire policy catch_up");
  EXPECT_EQ(make_misfire_rule(MisfirePolicy::catch_up, 0, std::nullopt).error().message,
            "catch_up_max: 0 is out of range 1-1024");
  EXPECT_EQ(make_misfire_rule(MisfirePolicy::catch_up, 1025, std::nullopt).error().message,
            "catch_up_max: 1025 is out of range 1-1024");
  EXPECT_EQ(make_misfire_rule(MisfirePolicy::fire_once, 3, std::nullopt).error().message,
            "catch_up_max: only applies to misfire policy catch_up");
  EXPECT_EQ(make_misfire_rule(MisfirePolicy::skip, std::nullopt, 3601).error().message,
            "grace_s: 3601 is out of range 0-3600");
}

}  // namespace
}  // namespace keel::flow

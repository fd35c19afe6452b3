#include "engine/flow/cron.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cassert>
#include <cstdio>

namespace keel::flow {
namespace {

constexpr int32_t year_max = 9999;
constexpr int32_t epoch_year = 1970;
constexpr uint64_t seconds_per_day = 86400;

// How one of the five fields reads: its name in messages, the values it takes, and the
// names that may stand for them (names[i] is the value name_base + i).
struct FieldSpec {
  std::string_view name;
  uint32_t value_min;
  uint32_t value_max;
  uint32_t star_max;     // the last value '*' covers
  uint32_t value_count;  // distinct values, and the largest step
  const std::string_view* names;
  size_t name_count;
  uint32_t name_base;
  std::string_view names_hint;  // how a message names them
};

constexpr std::string_view month_names[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                             "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
constexpr std::string_view day_names[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

constexpr FieldSpec minute_field{"minute", 0, 59, 59, 60, nullptr, 0, 0, ""};
constexpr FieldSpec hour_field{"hour", 0, 23, 23, 24, nullptr, 0, 0, ""};
constexpr FieldSpec day_of_month_field{"day-of-month", 1, 31, 31, 31, nullptr, 0, 0, ""};
constexpr FieldSpec month_field{"month", 1, 12, 12, 12, month_names, 12, 1, "a month name (JAN-DEC)"};
// 7 is another Sunday, accepted as a value and folded into bit 0 once the field is read;
// '*' means 0-6.
constexpr FieldSpec day_of_week_field{"day-of-week", 0, 7, 6, 7, day_names, 7, 0, "a day name (SUN-SAT)"};
constexpr const FieldSpec* fields[] = {&minute_field, &hour_field, &day_of_month_field, &month_field,
                                       &day_of_week_field};

struct Macro {
  std::string_view name;
  std::string_view expansion;
};
constexpr Macro macros[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"}, {"@weekly", "0 0 * * 0"},
    {"@daily", "0 0 * * *"},  {"@midnight", "0 0 * * *"}, {"@hourly", "0 * * * *"},
};

// Text as a message quotes it: in quote marks, with control characters, quote marks and
// bytes past ASCII escaped, so that the message stays one printable line.
std::string quoted(std::string_view text, char quote = '\'') {
  std::string out(1, quote);
  for (unsigned char c : text) {
    if (c < 0x20 || c >= 0x7f || c == uint8_t(quote) || c == '\\') {
      char escape[5];
      std::snprintf(escape, sizeof escape, "\\x%02x", c);
      out += escape;
    } else {
      out += char(c);
    }
  }
  return out + quote;
}

bool is_blank(char c) { return c == ' ' || c == '\t'; }

std::vector<std::string_view> split_blanks(std::string_view text) {
  std::vector<std::string_view> words;
  size_t at = 0;
  while (at < text.size()) {
    while (at < text.size() && is_blank(text[at])) ++at;
    size_t end = at;
    while (end < text.size() && !is_blank(text[end])) ++end;
    if (end > at) words.push_back(text.substr(at, end - at));
    at = end;
  }
  return words;
}

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c;
  return out;
}

bool equal_ignoring_case(std::string_view a, std::string_view b) { return a.size() == b.size() && lower(a) == lower(b); }

std::string range_text(const FieldSpec& field) {
  return std::to_string(field.value_min) + "-" + std::to_string(field.value_max);
}

bool is_number(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// The value of a string of digits, held at 1000: more than any field takes, so a long
// string is out of range rather than an overflow.
uint64_t capped_number(std::string_view digits) {
  uint64_t value = 0;
  for (char c : digits) value = std::min<uint64_t>(value * 10 + uint64_t(c - '0'), 1000);
  return value;
}

// One value of a field: digits, or a name where the field has names.
Result<uint32_t> parse_value(std::string_view token, const FieldSpec& field, std::string_view item) {
  if (token.empty()) return Error{"missing value in " + quoted(item)};
  if (is_number(token)) {
    uint64_t value = capped_number(token);
    if (value < field.value_min || value > field.value_max)
      return Error{std::string(token) + " is out of range " + range_text(field)};
    return uint32_t(value);
  }
  for (size_t i = 0; i < field.name_count; ++i) {
    if (equal_ignoring_case(token, field.names[i])) return uint32_t(field.name_base + i);
  }
  std::string reason = quoted(token) + " is not a number";
  if (field.name_count > 0) reason += " or " + std::string(field.names_hint);
  return Error{reason};
}

// One list item: '*', a value or a range, with an optional step after '*' or a range.
Result<uint64_t> parse_item(std::string_view item, const FieldSpec& field, std::string_view whole_field) {
  if (item.empty()) return Error{"empty list item in " + quoted(whole_field)};
  size_t slash = item.find('/');
  std::string_view base = item.substr(0, slash);
  uint32_t first = field.value_min, last = field.star_max, step = 1;
  if (base != "*") {
    size_t dash = base.find('-');
    Result<uint32_t> start = parse_value(base.substr(0, dash), field, item);
    if (!start) return start.error();
    first = last = *start;
    if (dash != std::string_view::npos) {
      Result<uint32_t> end = parse_value(base.substr(dash + 1), field, item);
      if (!end) return end.error();
      last = *end;
      if (first > last) return Error{"range " + quoted(base) + " runs backwards"};
    } else if (slash != std::string_view::npos) {
      return Error{"a step needs '*' or a range before it: " + quoted(item)};
    }
  }
  if (slash != std::string_view::npos) {
    std::string_view step_text = item.substr(slash + 1);
    if (!is_number(step_text)) return Error{"step " + quoted(step_text) + " is not a number"};
    uint64_t step_value = capped_number(step_text);
    if (step_value < 1 || step_value > field.value_count)
      return Error{"step " + std::string(step_text) + " is out of range 1-" + std::to_string(field.value_count)};
    step = uint32_t(step_value);
  }
  uint64_t mask = 0;
  for (uint32_t value = first; value <= last; value += step) mask |= uint64_t(1) << value;
  return mask;
}

struct ParsedField {
  uint64_t mask = 0;
  bool restricted = false;
};

Result<ParsedField> parse_field(std::string_view text, const FieldSpec& field) {
  ParsedField parsed;
  // Vixie cron's test for the day rule: a field that starts with '*' is unrestricted.
  parsed.restricted = text.front() != '*';
  size_t at = 0;
  while (true) {
    size_t comma = text.find(',', at);
    Result<uint64_t> item = parse_item(text.substr(at, comma == std::string_view::npos ? comma : comma - at), field, text);
    if (!item) return item.error();
    parsed.mask |= *item;
    if (comma == std::string_view::npos) break;
    at = comma + 1;
  }
  if (&field == &day_of_week_field && (parsed.mask & (1u << 7))) parsed.mask = (parsed.mask & 0x7f) | 1;  // 7: Sunday
  return parsed;
}

Result<CronSchedule> parse_fields(std::string_view text, const std::vector<std::string_view>& words) {
  CronSchedule schedule;
  ParsedField parsed[5];
  for (size_t i = 0; i < 5; ++i) {
    Result<ParsedField> field = parse_field(words[i], *fields[i]);
    if (!field) return make_error("cron " + quoted(text), std::string(fields[i]->name) + ": " + field.error().message);
    parsed[i] = *field;
  }
  schedule.minutes = parsed[0].mask;
  schedule.hours = uint32_t(parsed[1].mask);
  schedule.days_of_month = uint32_t(parsed[2].mask);
  schedule.months = uint16_t(parsed[3].mask);
  schedule.days_of_week = uint8_t(parsed[4].mask);
  schedule.day_of_month_restricted = parsed[2].restricted;
  schedule.day_of_week_restricted = parsed[4].restricted;
  return schedule;
}

Result<CronSchedule> parse_macro(std::string_view text, const std::vector<std::string_view>& words) {
  std::string place = "cron " + quoted(text);
  if (words.size() > 1) return make_error(place, "a macro stands alone, without fields after it");
  if (equal_ignoring_case(words[0], "@reboot")) return make_error(place, "@reboot is not supported: a timer needs a time");
  for (const Macro& macro : macros) {
    if (equal_ignoring_case(words[0], macro.name)) return parse_fields(text, split_blanks(macro.expansion));
  }
  return make_error(place, "unknown macro " + quoted(words[0]) +
                               " (@yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly)");
}

// ---- Calendar ----

bool is_leap_year(int32_t year) { return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0; }

uint32_t days_in_month(int32_t year, uint32_t month) {
  constexpr uint32_t days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return month == 2 && is_leap_year(year) ? 29 : days[month - 1];
}

// 0 = Sunday. 1970-01-01 was a Thursday.
uint32_t weekday_of(int64_t days) { return uint32_t(((days % 7) + 7 + 4) % 7); }

bool day_matches(const CronSchedule& schedule, int32_t year, uint32_t month, uint32_t day) {
  bool by_month_day = (schedule.days_of_month >> day) & 1;
  bool by_weekday = (schedule.days_of_week >> weekday_of(days_from_civil(year, month, day))) & 1;
  if (schedule.day_of_month_restricted && schedule.day_of_week_restricted) return by_month_day || by_weekday;
  return by_month_day && by_weekday;
}

// The lowest set bit of mask at or above from, or -1.
int lowest_bit_from(uint64_t mask, uint32_t from) {
  if (from >= 64) return -1;
  uint64_t above = mask & (~uint64_t(0) << from);
  return above ? std::countr_zero(above) : -1;
}

// The highest set bit of mask at or below from, or -1.
int highest_bit_to(uint64_t mask, int from) {
  if (from < 0) return -1;
  uint64_t below = mask & (from >= 63 ? ~uint64_t(0) : (uint64_t(2) << from) - 1);
  return below ? 63 - std::countl_zero(below) : -1;
}

// The first minute of a matching day at or after hour:minute that the hour and minute
// fields allow, as minutes since midnight, or -1.
int first_minute_from(const CronSchedule& schedule, uint32_t hour, uint32_t minute) {
  int found_hour = lowest_bit_from(schedule.hours, hour);
  if (found_hour < 0) return -1;
  if (uint32_t(found_hour) == hour) {
    int found_minute = lowest_bit_from(schedule.minutes, minute);
    if (found_minute >= 0) return found_hour * 60 + found_minute;
    found_hour = lowest_bit_from(schedule.hours, hour + 1);
    if (found_hour < 0) return -1;
  }
  return found_hour * 60 + std::countr_zero(schedule.minutes);
}

// The last minute of a matching day at or before hour:minute, or -1.
int last_minute_to(const CronSchedule& schedule, uint32_t hour, uint32_t minute) {
  int found_hour = highest_bit_to(schedule.hours, int(hour));
  if (found_hour < 0) return -1;
  if (uint32_t(found_hour) == hour) {
    int found_minute = highest_bit_to(schedule.minutes, int(minute));
    if (found_minute >= 0) return found_hour * 60 + found_minute;
    found_hour = highest_bit_to(schedule.hours, int(hour) - 1);
    if (found_hour < 0) return -1;
  }
  return found_hour * 60 + 63 - std::countl_zero(schedule.minutes);
}

uint64_t seconds_at(int32_t year, uint32_t month, uint32_t day, int minute_of_day) {
  return uint64_t(days_from_civil(year, month, day)) * seconds_per_day + uint64_t(minute_of_day) * 60;
}

// previous_fire_before, searching back no further than the start of year_floor.
std::optional<uint64_t> previous_fire_from(const CronSchedule& schedule, uint64_t before_s, int32_t year_floor) {
  if (before_s == 0) return std::nullopt;
  before_s = std::min(before_s, cron_time_s_max + 1);
  CivilTime at = civil_from_seconds((before_s - 1) / 60 * 60);
  int32_t year = at.year;
  uint32_t month = at.month, day = at.day, hour = at.hour, minute = at.minute;
  year_floor = std::max({year_floor, epoch_year, year - int32_t(cron_search_years)});
  while (year >= year_floor) {
    int found_month = highest_bit_to(schedule.months, int(month));
    if (found_month < 1) {
      year -= 1, month = 12, day = 31, hour = 23, minute = 59;
      continue;
    }
    if (uint32_t(found_month) != month) {
      month = uint32_t(found_month), day = days_in_month(year, month), hour = 23, minute = 59;
    }
    for (; day >= 1; --day, hour = 23, minute = 59) {
      if (!day_matches(schedule, year, month, day)) continue;
      int minute_of_day = last_minute_to(schedule, hour, minute);
      if (minute_of_day >= 0) return seconds_at(year, month, day, minute_of_day);
    }
    if (month == 1) year -= 1, month = 12;
    else month -= 1;
    day = days_in_month(year, month), hour = 23, minute = 59;
  }
  return std::nullopt;
}

// Renders the values of mask from first to last: "*/n" (or "first-last/n" where '*' would
// change the day rule) when they are every n-th value from the first, else a list of
// values and ranges.
std::string field_text(uint64_t mask, uint32_t first, uint32_t last, bool star_allowed) {
  uint64_t full = 0;
  for (uint32_t value = first; value <= last; ++value) full |= uint64_t(1) << value;
  std::string every = star_allowed ? "*" : std::to_string(first) + "-" + std::to_string(last);
  if (mask == full) return every;
  int second = lowest_bit_from(mask, uint32_t(std::countr_zero(mask)) + 1);
  if (std::countr_zero(mask) == int(first) && second > 0) {
    uint32_t step = uint32_t(second) - first;
    uint64_t stepped = 0;
    for (uint32_t value = first; value <= last; value += step) stepped |= uint64_t(1) << value;
    if (stepped == mask) return every + "/" + std::to_string(step);
  }
  std::string text;
  for (uint32_t value = first; value <= last; ++value) {
    if (!((mask >> value) & 1)) continue;
    uint32_t run_end = value;
    while (run_end < last && ((mask >> (run_end + 1)) & 1)) ++run_end;
    if (!text.empty()) text += ",";
    text += std::to_string(value);
    if (run_end > value) text += "-" + std::to_string(run_end);
    value = run_end;
  }
  return text;
}

// A day field keeps its restriction through the text: an unrestricted field must start
// with '*', a restricted one must not.
std::string day_field_text(uint64_t mask, uint32_t first, uint32_t last, uint32_t value_count, bool restricted) {
  if (restricted) return field_text(mask, first, last, false);
  std::string text = field_text(mask, first, last, true);
  if (text.front() == '*') return text;
  // Values that are not every n-th day, in a field that starts with '*': the step as large
  // as it goes gives just the first value, which a '*' field always holds.
  std::string rest = field_text(mask & ~(uint64_t(1) << first), first, last, false);
  return "*/" + std::to_string(value_count) + (rest.empty() ? "" : "," + rest);
}

std::vector<uint64_t> fires_to_keep(const CronSchedule& schedule, uint64_t due_s, uint64_t now_s, size_t keep,
                                    bool* dropped_some) {
  // Newest first, walking back from now_s to due_s; never more than keep + 1 steps.
  std::vector<uint64_t> kept;
  int32_t year_floor = civil_from_seconds(std::min(due_s, cron_time_s_max)).year;
  uint64_t before_s = std::min(now_s, cron_time_s_max) + 1;
  while (true) {
    std::optional<uint64_t> fire_s = previous_fire_from(schedule, before_s, year_floor);
    if (!fire_s || *fire_s <= due_s) break;
    if (kept.size() == keep) {
      *dropped_some = true;
      break;
    }
    kept.push_back(*fire_s);
    before_s = *fire_s;
  }
  if (!*dropped_some) {
    if (kept.size() < keep) kept.push_back(due_s);
    else *dropped_some = true;
  }
  std::reverse(kept.begin(), kept.end());
  return kept;
}

}  // namespace

Result<CronSchedule> parse_cron(std::string_view text) {
  if (text.size() > cron_text_chars_max)
    return make_error("cron " + quoted(std::string(text.substr(0, 32)) + "..."),
                      "longer than " + std::to_string(cron_text_chars_max) + " characters");
  std::vector<std::string_view> words = split_blanks(text);
  if (words.empty())
    return make_error("cron " + quoted(text),
                      "empty; expected 5 fields (minute hour day-of-month month day-of-week) or a macro such as @daily");
  if (words[0].front() == '@') return parse_macro(text, words);
  if (words.size() != 5)
    return make_error("cron " + quoted(text), "expected 5 fields (minute hour day-of-month month day-of-week), found " +
                                                  std::to_string(words.size()));
  return parse_fields(text, words);
}

std::string to_string(const CronSchedule& schedule) {
  return field_text(schedule.minutes, 0, 59, true) + " " + field_text(schedule.hours, 0, 23, true) + " " +
         day_field_text(schedule.days_of_month, 1, 31, 31, schedule.day_of_month_restricted) + " " +
         field_text(schedule.months, 1, 12, true) + " " +
         day_field_text(schedule.days_of_week, 0, 6, 7, schedule.day_of_week_restricted);
}

std::optional<uint64_t> next_fire_after(const CronSchedule& schedule, uint64_t after_s) {
  if (after_s >= cron_time_s_max) return std::nullopt;
  CivilTime at = civil_from_seconds((after_s / 60 + 1) * 60);
  int32_t year = at.year;
  uint32_t month = at.month, day = at.day, hour = at.hour, minute = at.minute;
  const int32_t year_limit = std::min(year + int32_t(cron_search_years), year_max);
  while (year <= year_limit) {
    int found_month = lowest_bit_from(schedule.months, month);
    if (found_month < 0) {
      year += 1, month = 1, day = 1, hour = 0, minute = 0;
      continue;
    }
    if (uint32_t(found_month) != month) month = uint32_t(found_month), day = 1, hour = 0, minute = 0;
    for (uint32_t last_day = days_in_month(year, month); day <= last_day; ++day, hour = 0, minute = 0) {
      if (!day_matches(schedule, year, month, day)) continue;
      int minute_of_day = first_minute_from(schedule, hour, minute);
      if (minute_of_day >= 0) return seconds_at(year, month, day, minute_of_day);
    }
    if (month == 12) year += 1, month = 1;
    else month += 1;
    day = 1, hour = 0, minute = 0;
  }
  return std::nullopt;
}

std::optional<uint64_t> previous_fire_before(const CronSchedule& schedule, uint64_t before_s) {
  return previous_fire_from(schedule, before_s, epoch_year);
}

// Howard Hinnant's days_from_civil: days since 1970-01-01 in the proleptic Gregorian
// calendar, counted in 400-year eras of 146097 days.
int64_t days_from_civil(int32_t year, uint32_t month, uint32_t day) {
  assert(month >= 1 && month <= 12 && day >= 1 && day <= 31);
  int64_t y = int64_t(year) - (month <= 2 ? 1 : 0);
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t year_of_era = y - era * 400;                                         // 0-399
  int64_t day_of_year = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;  // from March 1
  int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  return era * 146097 + day_of_era - 719468;
}

CivilTime civil_from_seconds(uint64_t time_s) {
  int64_t days = int64_t(time_s / seconds_per_day) + 719468;  // days since 0000-03-01
  uint64_t second_of_day = time_s % seconds_per_day;
  int64_t era = days / 146097;  // days >= 0: times are unsigned
  int64_t day_of_era = days - era * 146097;
  int64_t year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
  int64_t day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
  int64_t month_from_march = (5 * day_of_year + 2) / 153;
  CivilTime civil;
  civil.day = uint32_t(day_of_year - (153 * month_from_march + 2) / 5 + 1);
  civil.month = uint32_t(month_from_march < 10 ? month_from_march + 3 : month_from_march - 9);
  civil.year = int32_t(year_of_era + era * 400 + (civil.month <= 2 ? 1 : 0));
  civil.hour = uint32_t(second_of_day / 3600);
  civil.minute = uint32_t(second_of_day / 60 % 60);
  civil.second = uint32_t(second_of_day % 60);
  return civil;
}

std::string iso_string(uint64_t time_s) {
  CivilTime civil = civil_from_seconds(time_s);
  char text[48];
  std::snprintf(text, sizeof text, "%04d-%02u-%02uT%02u:%02u:%02uZ", int(civil.year), civil.month, civil.day,
                civil.hour, civil.minute, civil.second);
  return text;
}

MisfireDecision resolve_misfires(const CronSchedule& schedule, uint64_t due_s, uint64_t now_s,
                                 const MisfireRule& rule) {
  assert(rule.catch_up_max >= 1 && rule.catch_up_max <= catch_up_max_limit);
  assert(rule.grace_s <= misfire_grace_s_limit);
  MisfireDecision decision;
  if (due_s > now_s) {
    decision.next_fire_s = due_s;
    return decision;
  }
  decision.next_fire_s = next_fire_after(schedule, now_s);
  // On time, every due fire fires: they all lie within grace_s, so there are few.
  size_t keep = misfire_grace_s_limit / 60 + 1;
  if (now_s - due_s > rule.grace_s) {
    switch (rule.policy) {
      case MisfirePolicy::skip: keep = 0; break;
      case MisfirePolicy::fire_once: keep = 1; break;
      case MisfirePolicy::catch_up: keep = rule.catch_up_max; break;
    }
  }
  decision.fire_times_s = fires_to_keep(schedule, due_s, now_s, keep, &decision.dropped_some);
  return decision;
}

std::string_view to_string(MisfirePolicy policy) {
  switch (policy) {
    case MisfirePolicy::skip: return "skip";
    case MisfirePolicy::fire_once: return "fire_once";
    case MisfirePolicy::catch_up: return "catch_up";
  }
  assert(false && "MisfirePolicy value without a name");
  return "?";
}

Result<MisfirePolicy> parse_misfire_policy(std::string_view text) {
  for (MisfirePolicy policy : {MisfirePolicy::skip, MisfirePolicy::fire_once, MisfirePolicy::catch_up}) {
    if (text == to_string(policy)) return policy;
  }
  return Error{quoted(text, '"') + " is not a misfire policy (skip, fire_once or catch_up)"};
}

Result<MisfireRule> make_misfire_rule(MisfirePolicy policy, std::optional<uint64_t> catch_up_max,
                                      std::optional<uint64_t> grace_s) {
  MisfireRule rule;
  rule.policy = policy;
  if (policy == MisfirePolicy::catch_up) {
    if (!catch_up_max) return make_error("catch_up_max", "required by misfire policy catch_up");
    if (*catch_up_max < 1 || *catch_up_max > catch_up_max_limit)
      return make_error("catch_up_max", std::to_string(*catch_up_max) + " is out of range 1-" +
                                            std::to_string(catch_up_max_limit));
    rule.catch_up_max = uint32_t(*catch_up_max);
  } else if (catch_up_max) {
    return make_error("catch_up_max", "only applies to misfire policy catch_up");
  }
  if (grace_s) {
    if (*grace_s > misfire_grace_s_limit)
      return make_error("grace_s", std::to_string(*grace_s) + " is out of range 0-" +
                                       std::to_string(misfire_grace_s_limit));
    rule.grace_s = uint32_t(*grace_s);
  }
  return rule;
}

}  // namespace keel::flow

#include "common/log.hpp"

#include <cstdlib>
#include <memory>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace obmen::log {

namespace {

// "%*" → the sd-daemon(3) priority prefix "<N>" that journald turns into the line's level.
class syslog_priority_flag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    static constexpr const char* prefixes[] = {"<7>", "<7>", "<6>", "<4>", "<3>", "<2>", "<6>"};
    const char* p = prefixes[static_cast<int>(msg.level)];
    dest.append(p, p + 3);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<syslog_priority_flag>();
  }
};

}  // namespace

std::optional<spdlog::level::level_enum> parse_level(std::string_view s) {
  using spdlog::level::level_enum;
  if (s == "trace") return level_enum::trace;
  if (s == "debug") return level_enum::debug;
  if (s == "info") return level_enum::info;
  if (s == "warn" || s == "warning") return level_enum::warn;
  if (s == "error") return level_enum::err;
  if (s == "critical") return level_enum::critical;
  if (s == "off") return level_enum::off;
  return std::nullopt;
}

void setup(spdlog::level::level_enum level) {
  auto logger = spdlog::get("obmen");
  if (!logger) {
    logger = spdlog::stdout_logger_mt("obmen");
    auto formatter = std::make_unique<spdlog::pattern_formatter>();
    // Under systemd journald timestamps every line itself and reads the priority prefix.
    if (std::getenv("JOURNAL_STREAM") != nullptr)
      formatter->add_flag<syslog_priority_flag>('*').set_pattern("%*%l %v");
    else
      formatter->set_pattern("%Y-%m-%d %H:%M:%S.%e %l %v");
    logger->set_formatter(std::move(formatter));
    spdlog::set_default_logger(logger);
  }
  logger->set_level(level);
  logger->flush_on(spdlog::level::trace);
}

}  // namespace obmen::log

#include "daemon/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace airlock::daemon {
namespace {

// Label values: backslash, double quote and line feed are escaped (exposition format 0.0.4).
void append_label_value(std::string& out, std::string_view value) {
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

// HELP text: backslash and line feed only.
void append_help(std::string& out, std::string_view help) {
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

const std::vector<double> kCreateBuckets = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
const std::vector<double> kExecBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};

}  // namespace

std::string format_metric_value(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::floor(value) && std::fabs(value) < 1e15) {
    return std::to_string(static_cast<int64_t>(value));
  }
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);  // shortest text that round-trips
  return ec == std::errc() ? std::string(buf, end) : std::string("NaN");
}

void MetricsText::family(std::string_view name, std::string_view type, std::string_view help) {
  text_ += "# HELP ";
  text_ += name;
  text_ += ' ';
  append_help(text_, help);
  text_ += "\n# TYPE ";
  text_ += name;
  text_ += ' ';
  text_ += type;
  text_ += '\n';
}

void MetricsText::sample(std::string_view name, const MetricLabels& labels, double value) {
  text_ += name;
  if (!labels.empty()) {
    text_ += '{';
    for (size_t i = 0; i < labels.size(); ++i) {
      if (i) text_ += ',';
      text_ += labels[i].first;
      text_ += "=\"";
      append_label_value(text_, labels[i].second);
      text_ += '"';
    }
    text_ += '}';
  }
  text_ += ' ';
  text_ += format_metric_value(value);
  text_ += '\n';
}

// --- counters and gauges ------------------------------------------------------------------------------

void LabeledValues::add(const std::vector<std::string>& label_values, double delta) {
  if (label_values.size() != label_names_.size()) return;
  std::lock_guard guard(values_mu_);
  values_[label_values] += delta;
}

void LabeledValues::set(const std::vector<std::string>& label_values, double value) {
  if (label_values.size() != label_names_.size()) return;
  std::lock_guard guard(values_mu_);
  values_[label_values] = value;
}

double LabeledValues::get(const std::vector<std::string>& label_values) const {
  std::lock_guard guard(values_mu_);
  auto it = values_.find(label_values);
  return it == values_.end() ? 0 : it->second;
}

void LabeledValues::render(MetricsText& out) const {
  out.family(name_, type_, help_);
  std::lock_guard guard(values_mu_);
  // A family without labels always shows its one sample, so a scraper sees 0 rather than nothing.
  if (label_names_.empty() && values_.empty()) out.sample(name_, {}, 0);
  for (const auto& [label_values, value] : values_) {
    MetricLabels labels;
    for (size_t i = 0; i < label_names_.size(); ++i) labels.emplace_back(label_names_[i], label_values[i]);
    out.sample(name_, labels, value);
  }
}

// --- histograms ---------------------------------------------------------------------------------------

Histogram::Histogram(std::string name, std::string help, std::vector<double> upper_bounds)
    : name_(std::move(name)), help_(std::move(help)), bounds_(std::move(upper_bounds)) {
  std::sort(bounds_.begin(), bounds_.end());
  bounds_.erase(std::unique(bounds_.begin(), bounds_.end()), bounds_.end());
  counts_.assign(bounds_.size() + 1, 0);
}

void Histogram::observe(double value) {
  if (std::isnan(value)) return;
  // le: a value equal to a bound belongs in that bound's bucket.
  size_t bucket = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin());
  std::lock_guard guard(counts_mu_);
  counts_[bucket] += 1;
  sum_ += value;
  count_ += 1;
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.upper_bounds = bounds_;
  std::lock_guard guard(counts_mu_);
  uint64_t running = 0;
  for (uint64_t n : counts_) {
    running += n;
    s.cumulative.push_back(running);
  }
  s.sum = sum_;
  s.count = count_;
  return s;
}

void Histogram::render(MetricsText& out) const {
  Snapshot s = snapshot();
  out.family(name_, "histogram", help_);
  std::string bucket = name_ + "_bucket";
  for (size_t i = 0; i < s.upper_bounds.size(); ++i) {
    out.sample(bucket, {{"le", format_metric_value(s.upper_bounds[i])}}, static_cast<double>(s.cumulative[i]));
  }
  out.sample(bucket, {{"le", "+Inf"}}, static_cast<double>(s.count));
  out.sample(name_ + "_sum", {}, s.sum);
  out.sample(name_ + "_count", {}, static_cast<double>(s.count));
}

// --- registry -----------------------------------------------------------------------------------------

LabeledValues& MetricsRegistry::counter(std::string name, std::string help, std::vector<std::string> label_names) {
  std::lock_guard guard(families_mu_);
  auto values = std::make_unique<LabeledValues>(std::move(name), std::move(help), "counter", std::move(label_names));
  LabeledValues& ref = *values;
  families_.push_back(Family{std::move(values), nullptr});
  return ref;
}

LabeledValues& MetricsRegistry::gauge(std::string name, std::string help, std::vector<std::string> label_names) {
  std::lock_guard guard(families_mu_);
  auto values = std::make_unique<LabeledValues>(std::move(name), std::move(help), "gauge", std::move(label_names));
  LabeledValues& ref = *values;
  families_.push_back(Family{std::move(values), nullptr});
  return ref;
}

Histogram& MetricsRegistry::histogram(std::string name, std::string help, std::vector<double> upper_bounds) {
  std::lock_guard guard(families_mu_);
  auto histogram = std::make_unique<Histogram>(std::move(name), std::move(help), std::move(upper_bounds));
  Histogram& ref = *histogram;
  families_.push_back(Family{nullptr, std::move(histogram)});
  return ref;
}

void MetricsRegistry::render(MetricsText& out) const {
  std::lock_guard guard(families_mu_);
  for (const auto& f : families_) {
    if (f.values) f.values->render(out);
    if (f.histogram) f.histogram->render(out);
  }
}

// --- the daemon's instruments -------------------------------------------------------------------------

DaemonMetrics::DaemonMetrics()
    : create_seconds_(registry_.histogram("airlock_sandbox_create_seconds",
                                          "time to create a sandbox (POST /v1/sandboxes that succeeded)",
                                          kCreateBuckets)),
      exec_seconds_(registry_.histogram("airlock_exec_seconds", "round trip of one command, exec to exit",
                                        kExecBuckets)),
      http_requests_(registry_.counter("airlock_http_requests_total", "API responses by route pattern and status",
                                       {"route", "code"})),
      agent_protocol_errors_(registry_.counter("airlock_agent_protocol_errors_total",
                                               "exchanges with a sandbox agent that broke the protocol")) {}

void DaemonMetrics::observe_sandbox_create(double seconds) { create_seconds_.observe(seconds); }

void DaemonMetrics::observe_exec(double seconds) { exec_seconds_.observe(seconds); }

void DaemonMetrics::count_http_request(std::string_view route, int status) {
  http_requests_.add({std::string(route), std::to_string(status)}, 1);
}

void DaemonMetrics::count_agent_protocol_error() { agent_protocol_errors_.add({}, 1); }

}  // namespace airlock::daemon

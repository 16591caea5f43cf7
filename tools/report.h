// The conformance report: a JSON file and a self-contained HTML page with a row
// per case (docs/driver.md, "Reports").
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace towns::tools {

// Writes <dir>/report.json (the document as is) and <dir>/report.html. The
// document has "title", "peer", "summary" (an object of counts) and "cases", each
// with "id", "result" (pass, fail, deviation, not-expressible), "section",
// "roles", "why", "expected", "actual", "exchanges" ({sent, reply, failure})
// and, for a failed case, "stderr" ({driver, text}: the tail of what each
// driver process of the case wrote to stderr, where it wrote anything).
void write_report(const std::string& dir, const nlohmann::json& report);

}  // namespace towns::tools

#include "report.h"

#include <filesystem>
#include <fstream>

#include "towns/error.h"

namespace towns::tools {

using nlohmann::json;

namespace {

std::string escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

// A value as the page shows it: text as it is, anything else as JSON.
std::string shown(const json& v) {
  if (v.is_null()) return "";
  // A peer's bytes need not be UTF-8 (a garbage line, a string cut short):
  // invalid sequences are shown as U+FFFD rather than failing the report.
  std::string s = v.is_string() ? v.get<std::string>() : v.dump(1, ' ', false, json::error_handler_t::replace);
  if (s.size() > 4000) s = s.substr(0, 4000) + "… (" + std::to_string(s.size()) + " bytes)";
  return escape(s);
}

}  // namespace

void write_report(const std::string& dir, const json& report) {
  std::filesystem::create_directories(dir);
  {
    std::ofstream f(std::filesystem::path(dir) / "report.json", std::ios::trunc);
    f << report.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
    if (!f) throw Error(ErrorCode::STORE_ERROR, "cannot write " + dir + "/report.json");
  }
  std::string html =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" + escape(report.value("title", "")) +
      "</title>\n<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;width:100%}"
      "td,th{border:1px solid #ccc;padding:4px 6px;vertical-align:top;text-align:left}"
      ".pass{background:#e8f5e9}.fail{background:#ffebee}.deviation{background:#fff8e1}"
      ".not-expressible{background:#f5f5f5;color:#666}pre{white-space:pre-wrap;word-break:break-all;margin:0}"
      "</style></head><body>\n<h1>" +
      escape(report.value("title", "")) + "</h1>\n<p>Peer: <code>" + escape(report.value("peer", "")) + "</code></p>\n<p>";
  static const json kNone = json::object(), kNoList = json::array();
  const json& summary = report.contains("summary") ? report.at("summary") : kNone;
  const json& cases = report.contains("cases") ? report.at("cases") : kNoList;
  for (auto it = summary.begin(); it != summary.end(); ++it) html += escape(it.key()) + ": " + it.value().dump(-1, ' ', false, json::error_handler_t::replace) + " &nbsp; ";
  html += "</p>\n<table><tr><th>case</th><th>result</th><th>section</th><th>roles</th><th>why</th><th>details</th></tr>\n";
  for (const auto& c : cases) {
    auto result = c.value("result", "");
    html += "<tr class=\"" + escape(result) + "\"><td>" + escape(c.value("id", "")) + "</td><td>" + escape(result) +
            "</td><td>" + escape(c.value("section", "")) + "</td><td>" + shown(c.value("roles", json())) + "</td><td>" +
            escape(c.value("why", "")) + "</td><td>";
    if (result != "pass" && result != "not-expressible") {
      html += std::string("<details><summary>expected, actual, exchanges") + (c.contains("stderr") ? ", stderr" : "") +
              "</summary><p>expected</p><pre>" +
              shown(c.value("expected", json())) + "</pre><p>actual</p><pre>" + shown(c.value("actual", json())) +
              (c.contains("actualOutput") ? "\n" + shown(c.at("actualOutput")) : std::string()) + "</pre>";
      if (c.contains("vector")) html += "<p>the vector</p><pre>" + shown(c.at("vector")) + "</pre>";
      const json& exchanges = c.contains("exchanges") ? c.at("exchanges") : kNoList;
      for (const auto& x : exchanges) {
        html += "<p>sent</p><pre>" + shown(x.value("sent", json())) + "</pre><p>reply</p><pre>" +
                (x.value("failure", "").empty() ? shown(x.value("reply", json())) : escape(x.value("failure", ""))) +
                "</pre>";
      }
      // Whole: it is a bounded tail already (tools/peer.h).
      const json& err = c.contains("stderr") ? c.at("stderr") : kNoList;
      for (const auto& e : err) {
        html += "<p>stderr of " + escape(e.value("driver", "")) + "</p><pre>" +
                escape(e.at("text").is_string() ? e.at("text").get<std::string>() : e.at("text").dump()) + "</pre>";
      }
      html += "</details>";
    }
    html += "</td></tr>\n";
  }
  html += "</table>\n</body></html>\n";
  std::ofstream f(std::filesystem::path(dir) / "report.html", std::ios::trunc);
  f << html;
  if (!f) throw Error(ErrorCode::STORE_ERROR, "cannot write " + dir + "/report.html");
}

}  // namespace towns::tools

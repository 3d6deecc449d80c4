#include "cli/api_client.h"

namespace airlock::cli {
namespace {

constexpr size_t kMaxJsonReply = 64u << 20;  // a page of 1,000 sandboxes is ~2 MiB
constexpr size_t kMaxErrorReply = 1u << 20;

HttpRequestHead request_head(std::string_view method, const std::string& target, std::vector<HttpHeader> auth) {
  HttpRequestHead head;
  head.method = std::string(method);
  head.target = target;
  head.headers = std::move(auth);
  return head;
}

}  // namespace

std::string dump_json(const nlohmann::json& value, int indent) {
  return value.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string ApiReply::error_code() const {
  if (!body.is_object()) return "";
  auto it = body.find("error");
  if (it == body.end() || !it->is_object()) return "";
  auto code = it->find("code");
  return code != it->end() && code->is_string() ? code->get<std::string>() : "";
}

Error ApiReply::error() const {
  std::string code = error_code();
  if (code.empty()) return plain_error("the daemon answered HTTP " + std::to_string(status));
  const auto& detail = body["error"];
  auto message = detail.find("message");
  std::string text = message != detail.end() && message->is_string() ? message->get<std::string>() : code;
  return plain_error(text + " (" + code + ")");
}

ApiReply error_reply(int status, HttpResponseHead head, std::string_view body) {
  ApiReply reply;
  reply.status = status;
  reply.head = std::move(head);
  reply.body = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (reply.body.is_discarded()) reply.body = nullptr;
  return reply;
}

std::vector<HttpHeader> ApiClient::auth_headers() const {
  if (config_.api_key.empty()) return {};
  return {{"Authorization", "Bearer " + config_.api_key}};
}

Result<HttpConnection> ApiClient::start(std::string_view method, const std::string& target, const nlohmann::json* body) const {
  TRY(auto connection, HttpConnection::connect(config_.endpoint));
  auto head = request_head(method, target, auth_headers());
  std::string text;
  if (body) {
    head.headers.push_back({"Content-Type", "application/json"});
    text = dump_json(*body);
  }
  TRY_STATUS(connection.send(head, text));
  return connection;
}

Result<ApiReply> ApiClient::request(std::string_view method, const std::string& target, const nlohmann::json* body) const {
  TRY(auto connection, start(method, target, body));
  TRY(auto head, connection.read_head());
  TRY(auto text, connection.read_body_all(head.status >= 200 && head.status < 300 ? kMaxJsonReply : kMaxErrorReply));
  return error_reply(head.status, std::move(head), text);
}

Result<nlohmann::json> ApiClient::get(const std::string& target) const {
  TRY(auto reply, request("GET", target));
  if (!reply.ok()) return reply.error();
  return std::move(reply.body);
}

Result<nlohmann::json> ApiClient::post(const std::string& target, const nlohmann::json& body) const {
  TRY(auto reply, request("POST", target, &body));
  if (!reply.ok()) return reply.error();
  return std::move(reply.body);
}

Result<nlohmann::json> ApiClient::del(const std::string& target) const {
  TRY(auto reply, request("DELETE", target));
  if (!reply.ok()) return reply.error();
  return std::move(reply.body);
}

Result<ApiReply> ApiClient::upload(std::string_view method, const std::string& target, int fd, uint64_t length) const {
  TRY(auto connection, HttpConnection::connect(config_.endpoint));
  auto head = request_head(method, target, auth_headers());
  head.headers.push_back({"Content-Type", "application/octet-stream"});
  auto sent = connection.send_from_fd(head, fd, length);
  // The daemon may refuse early (413, 404) and close while we send: its answer says why.
  auto reply_head = connection.read_head();
  if (!reply_head.ok()) {
    if (!sent.ok()) return std::move(sent).error();
    return std::move(reply_head).error();
  }
  TRY(auto text, connection.read_body_all(kMaxErrorReply));
  return error_reply(reply_head->status, std::move(*reply_head), text);
}

Result<ApiStream> ApiClient::open(std::string_view method, const std::string& target, const nlohmann::json* body) const {
  TRY(auto connection, start(method, target, body));
  TRY(auto head, connection.read_head());
  if (head.status < 200 || head.status >= 300) {
    TRY(auto text, connection.read_body_all(kMaxErrorReply));
    return error_reply(head.status, std::move(head), text).error();
  }
  return ApiStream(std::move(connection), std::move(head));
}

}  // namespace airlock::cli

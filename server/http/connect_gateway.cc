#include "server/http/connect_gateway.h"

#include <chrono>
#include <map>

#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/util/json_util.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "server/service/status_mapping.h"

namespace memnode::http {
namespace {

namespace pb = google::protobuf;

constexpr absl::string_view kRpcPrefix = "/memnode.v1.";

std::string UnpaddedBase64(absl::string_view bytes) {
  std::string out = absl::Base64Escape(bytes);
  while (!out.empty() && out.back() == '=') out.pop_back();
  return out;
}

// The media type of a Content-Type value, lower case, parameters dropped.
std::string MediaType(absl::string_view content_type) {
  absl::string_view t = content_type.substr(0, content_type.find(';'));
  return absl::AsciiStrToLower(absl::StripAsciiWhitespace(t));
}

bool IsIdentity(absl::string_view encoding) {
  encoding = absl::StripAsciiWhitespace(encoding);
  return encoding.empty() || absl::EqualsIgnoreCase(encoding, "identity");
}

grpc::Status InvalidBody(absl::string_view message) {
  return service::Error(grpc::StatusCode::INVALID_ARGUMENT, Reason::kInvalidBody, message);
}

std::unique_ptr<pb::Message> NewMessage(const pb::Descriptor* type) {
  const pb::Message* proto = pb::MessageFactory::generated_factory()->GetPrototype(type);
  return std::unique_ptr<pb::Message>(proto->New());
}

std::string ToString(const grpc::ByteBuffer& buf) {
  std::vector<grpc::Slice> slices;
  std::string out;
  if (!buf.Dump(&slices).ok()) return out;
  for (const grpc::Slice& s : slices)
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

grpc::ByteBuffer ToByteBuffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

pb::util::JsonPrintOptions PrintOptions() {
  pb::util::JsonPrintOptions o;
  // Zero values are printed too ("pagesShared": "0"), which reads better in
  // curl and is still canonical JSON for any Connect client.
  o.always_print_primitive_fields = true;
  return o;
}

// The request message of `method` from the request body.
grpc::Status ParseRequest(const pb::MethodDescriptor* method, bool json, const std::string& body,
                          std::string* serialized) {
  std::unique_ptr<pb::Message> msg = NewMessage(method->input_type());
  if (json) {
    // An empty body is the empty message (handy with curl).
    if (!absl::StripAsciiWhitespace(body).empty()) {
      pb::util::JsonParseOptions opts;
      opts.ignore_unknown_fields = false;  // a misspelt field is an error, not ignored
      const auto st = pb::util::JsonStringToMessage(body, msg.get(), opts);
      if (!st.ok())
        return InvalidBody(absl::StrCat("the body is not a JSON ",
                                        method->input_type()->full_name(), ": ",
                                        std::string(st.message())));
    }
    if (!msg->SerializeToString(serialized))
      return InvalidBody("the request message cannot be serialized");
    return grpc::Status::OK;
  }
  if (!msg->ParseFromString(body))
    return InvalidBody(
        absl::StrCat("the body is not a binary ", method->input_type()->full_name()));
  *serialized = body;
  return grpc::Status::OK;
}

// The response body (JSON or binary) of a serialized response message.
bool FormatResponse(const pb::MethodDescriptor* method, bool json, const std::string& bytes,
                    std::string* out) {
  if (!json) {
    *out = bytes;
    return true;
  }
  std::unique_ptr<pb::Message> msg = NewMessage(method->output_type());
  if (!msg->ParseFromString(bytes)) return false;
  out->clear();
  return pb::util::MessageToJsonString(*msg, out, PrintOptions()).ok();
}

// Connect-Timeout-Ms and Authorization onto the gRPC call.
grpc::Status PrepareContext(const HttpRequest& req, grpc::ClientContext* ctx) {
  if (!req.timeout_ms.empty()) {
    uint64_t ms = 0;
    if (req.timeout_ms.size() > 10 || !absl::SimpleAtoi(req.timeout_ms, &ms) ||
        !absl::ascii_isdigit(static_cast<unsigned char>(req.timeout_ms[0])))
      return service::Error(grpc::StatusCode::INVALID_ARGUMENT, Reason::kInvalidHeader,
                            "Connect-Timeout-Ms must be a positive integer of at most 10 digits",
                            {{"header", "connect-timeout-ms"}});
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(ms));
  }
  if (!req.authorization.empty()) {
    for (char c : req.authorization)
      if (c < 0x20 || c > 0x7e)
        return service::Error(grpc::StatusCode::UNAUTHENTICATED, Reason::kUnauthenticated,
                              "the authorization header is not 'Bearer <token>'");
    ctx->AddMetadata("authorization", req.authorization);
  }
  return grpc::Status::OK;
}

// Metadata the gRPC library owns (status, details) is not forwarded.
bool ForwardedKey(absl::string_view key) {
  return !absl::StartsWith(key, "grpc-") && !absl::StartsWith(key, ":");
}

std::string MetadataValue(absl::string_view key, grpc::string_ref value) {
  absl::string_view v(value.data(), value.size());
  return absl::EndsWith(key, "-bin") ? UnpaddedBase64(v) : std::string(v);
}

// A JSON string literal of UTF-8 text.
std::string JsonQuote(absl::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20)
          absl::StrAppend(&out, "\\u00", absl::Hex(static_cast<unsigned char>(c), absl::kZeroPad2));
        else
          out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

// The Connect Error object, fields in the protocol's order.
std::string ErrorObject(const grpc::Status& status) {
  std::string out = absl::StrCat("{\"code\":", JsonQuote(ConnectCodeName(status.error_code())));
  if (!status.error_message().empty())
    absl::StrAppend(&out, ",\"message\":", JsonQuote(status.error_message()));
  google::rpc::Status details;
  if (!status.error_details().empty() && details.ParseFromString(status.error_details()) &&
      details.details_size() > 0) {
    out += ",\"details\":[";
    bool first = true;
    for (const pb::Any& any : details.details()) {
      absl::string_view type = any.type_url();
      type = type.substr(type.rfind('/') + 1);
      absl::StrAppend(&out, first ? "" : ",", "{\"type\":", JsonQuote(type),
                      ",\"value\":", JsonQuote(UnpaddedBase64(any.value())));
      first = false;
      // "debug": the detail as JSON when its type is compiled in (ErrorInfo).
      const pb::Descriptor* desc =
          pb::DescriptorPool::generated_pool()->FindMessageTypeByName(std::string(type));
      if (desc != nullptr) {
        std::unique_ptr<pb::Message> msg = NewMessage(desc);
        std::string json;
        if (msg->ParseFromString(any.value()) && pb::util::MessageToJsonString(*msg, &json).ok())
          absl::StrAppend(&out, ",\"debug\":", json);
      }
      out += "}";
    }
    out += "]";
  }
  out += "}";
  return out;
}

HttpResponse UnsupportedMediaType(bool streaming) {
  HttpResponse r;
  r.status = 415;
  r.headers = {{"Content-Type", "text/plain; charset=utf-8"},
               {"Accept-Post", streaming ? "application/connect+json, application/connect+proto"
                                         : "application/json, application/proto"}};
  r.body = streaming ? "a server-streaming method takes application/connect+json or "
                       "application/connect+proto\n"
                     : "a unary method takes application/json or application/proto\n";
  return r;
}

}  // namespace

absl::string_view ConnectCodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "ok";
    case grpc::StatusCode::CANCELLED: return "canceled";
    case grpc::StatusCode::UNKNOWN: return "unknown";
    case grpc::StatusCode::INVALID_ARGUMENT: return "invalid_argument";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "deadline_exceeded";
    case grpc::StatusCode::NOT_FOUND: return "not_found";
    case grpc::StatusCode::ALREADY_EXISTS: return "already_exists";
    case grpc::StatusCode::PERMISSION_DENIED: return "permission_denied";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "resource_exhausted";
    case grpc::StatusCode::FAILED_PRECONDITION: return "failed_precondition";
    case grpc::StatusCode::ABORTED: return "aborted";
    case grpc::StatusCode::OUT_OF_RANGE: return "out_of_range";
    case grpc::StatusCode::UNIMPLEMENTED: return "unimplemented";
    case grpc::StatusCode::INTERNAL: return "internal";
    case grpc::StatusCode::UNAVAILABLE: return "unavailable";
    case grpc::StatusCode::DATA_LOSS: return "data_loss";
    case grpc::StatusCode::UNAUTHENTICATED: return "unauthenticated";
    default: return "unknown";
  }
}

int HttpStatusOfCode(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return 200;
    case grpc::StatusCode::CANCELLED: return 499;
    case grpc::StatusCode::INVALID_ARGUMENT: return 400;
    case grpc::StatusCode::DEADLINE_EXCEEDED: return 504;
    case grpc::StatusCode::NOT_FOUND: return 404;
    case grpc::StatusCode::ALREADY_EXISTS: return 409;
    case grpc::StatusCode::PERMISSION_DENIED: return 403;
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return 429;
    case grpc::StatusCode::FAILED_PRECONDITION: return 400;
    case grpc::StatusCode::ABORTED: return 409;
    case grpc::StatusCode::OUT_OF_RANGE: return 400;
    case grpc::StatusCode::UNIMPLEMENTED: return 501;
    case grpc::StatusCode::UNAVAILABLE: return 503;
    case grpc::StatusCode::UNAUTHENTICATED: return 401;
    default: return 500;  // unknown, internal, data_loss
  }
}

std::string ErrorJson(const grpc::Status& status) { return ErrorObject(status); }

std::string Envelope(uint8_t flags, absl::string_view payload) {
  std::string out;
  out.reserve(5 + payload.size());
  out.push_back(static_cast<char>(flags));
  const uint32_t n = static_cast<uint32_t>(payload.size());
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((n >> shift) & 0xff));
  out.append(payload.data(), payload.size());
  return out;
}

ConnectGateway::ConnectGateway(std::shared_ptr<grpc::ChannelInterface> channel, Options options)
    : channel_(channel), stub_(std::move(channel)), options_(options) {}

bool ConnectGateway::IsRpcPath(absl::string_view path) {
  return absl::StartsWith(path, kRpcPrefix);
}

const pb::MethodDescriptor* ConnectGateway::FindMethod(absl::string_view path) {
  if (!IsRpcPath(path)) return nullptr;
  absl::string_view rest = path.substr(1);  // "memnode.v1.KsmService/GetKsm"
  const size_t slash = rest.find('/');
  if (slash == absl::string_view::npos) return nullptr;
  const pb::ServiceDescriptor* service =
      pb::DescriptorPool::generated_pool()->FindServiceByName(std::string(rest.substr(0, slash)));
  if (service == nullptr) return nullptr;
  return service->FindMethodByName(std::string(rest.substr(slash + 1)));
}

HttpResponse ConnectGateway::ErrorResponse(const grpc::Status& status) {
  HttpResponse r;
  r.status = HttpStatusOfCode(status.error_code());
  r.headers = {{"Content-Type", "application/json"}};
  r.body = ErrorJson(status);
  return r;
}

void ConnectGateway::Serve(const HttpRequest& req, Responder* out) {
  const pb::MethodDescriptor* method = FindMethod(req.path);
  if (method == nullptr || method->client_streaming()) {
    // 404 is what Connect clients read as "unimplemented" without a body.
    HttpResponse r = ErrorResponse(service::Error(
        grpc::StatusCode::UNIMPLEMENTED, Reason::kUnknownMethod,
        absl::StrCat(req.path, " is not a method of memnode.v1"), {{"path", req.path}}));
    r.status = 404;
    out->Send(r);
    return;
  }
  if (req.method != "POST") {
    HttpResponse r;
    r.status = 405;
    r.headers = {{"Allow", "POST"}, {"Content-Type", "text/plain; charset=utf-8"}};
    r.body = "RPCs are POST requests (Connect protocol)\n";
    out->Send(r);
    return;
  }
  const std::string media = MediaType(req.content_type);
  if (method->server_streaming()) {
    if (media != "application/connect+json" && media != "application/connect+proto") {
      out->Send(UnsupportedMediaType(true));
      return;
    }
    ServeServerStream(req, method, media == "application/connect+json", out);
    return;
  }
  if (media != "application/json" && media != "application/proto") {
    out->Send(UnsupportedMediaType(false));
    return;
  }
  ServeUnary(req, method, media == "application/json", out);
}

void ConnectGateway::ServeUnary(const HttpRequest& req, const pb::MethodDescriptor* method,
                                bool json, Responder* out) {
  if (!req.protocol_version.empty() && req.protocol_version != "1") {
    out->Send(ErrorResponse(service::Error(
        grpc::StatusCode::INVALID_ARGUMENT, Reason::kInvalidHeader,
        "Connect-Protocol-Version must be 1", {{"header", "connect-protocol-version"}})));
    return;
  }
  if (!IsIdentity(req.content_encoding)) {
    out->Send(
        ErrorResponse(service::Error(grpc::StatusCode::UNIMPLEMENTED, Reason::kUnsupportedEncoding,
                                     absl::StrCat("Content-Encoding ", req.content_encoding,
                                                  " is not supported; supported: identity"),
                                     {{"header", "content-encoding"}})));
    return;
  }
  grpc::ClientContext ctx;
  std::string request_bytes;
  grpc::Status st = PrepareContext(req, &ctx);
  if (st.ok()) st = ParseRequest(method, json, req.body, &request_bytes);
  if (!st.ok()) {
    out->Send(ErrorResponse(st));
    return;
  }
  const grpc::ByteBuffer request = ToByteBuffer(request_bytes);
  grpc::ByteBuffer reply;
  absl::Notification done;
  grpc::Status call_status;
  const std::string path = absl::StrCat("/", method->service()->full_name(), "/", method->name());
  stub_.UnaryCall(&ctx, path, grpc::StubOptions(), &request, &reply,
                  [&call_status, &done](grpc::Status s) {
                    call_status = std::move(s);
                    done.Notify();
                  });
  done.WaitForNotification();

  HttpResponse r;
  for (const auto& [k, v] : ctx.GetServerInitialMetadata()) {
    const absl::string_view key(k.data(), k.size());
    if (ForwardedKey(key)) r.headers.emplace_back(std::string(key), MetadataValue(key, v));
  }
  for (const auto& [k, v] : ctx.GetServerTrailingMetadata()) {
    const absl::string_view key(k.data(), k.size());
    if (ForwardedKey(key))
      r.headers.emplace_back(absl::StrCat("trailer-", key), MetadataValue(key, v));
  }
  if (!call_status.ok()) {
    HttpResponse e = ErrorResponse(call_status);
    e.headers.insert(e.headers.end(), r.headers.begin(), r.headers.end());
    out->Send(e);
    return;
  }
  if (!FormatResponse(method, json, ToString(reply), &r.body)) {
    out->Send(ErrorResponse(service::Error(grpc::StatusCode::INTERNAL, Reason::kInternal,
                                           "the response message could not be converted")));
    return;
  }
  r.status = 200;
  r.headers.insert(r.headers.begin(),
                   {"Content-Type", json ? "application/json" : "application/proto"});
  out->Send(r);
}

void ConnectGateway::ServeServerStream(const HttpRequest& req, const pb::MethodDescriptor* method,
                                       bool json, Responder* out) {
  const Headers headers = {
      {"Content-Type", json ? "application/connect+json" : "application/connect+proto"}};
  // Errors found before the call still answer 200 with an end-stream error:
  // a streaming response always does (Connect protocol, Streaming-Response).
  auto end_with = [&](const grpc::Status& status, const std::string& metadata) {
    std::string end = "{";
    if (!status.ok()) absl::StrAppend(&end, "\"error\":", ErrorObject(status));
    if (!metadata.empty()) absl::StrAppend(&end, status.ok() ? "" : ",", "\"metadata\":", metadata);
    end += "}";
    out->Write(Envelope(kFlagEndStream, end));
    out->End();
  };
  if (!req.protocol_version.empty() && req.protocol_version != "1") {
    out->StartStream(headers);
    end_with(service::Error(grpc::StatusCode::INVALID_ARGUMENT, Reason::kInvalidHeader,
                            "Connect-Protocol-Version must be 1",
                            {{"header", "connect-protocol-version"}}),
             "");
    return;
  }
  if (!IsIdentity(req.connect_content_encoding)) {
    out->StartStream(headers);
    end_with(service::Error(grpc::StatusCode::UNIMPLEMENTED, Reason::kUnsupportedEncoding,
                            absl::StrCat("Connect-Content-Encoding ", req.connect_content_encoding,
                                         " is not supported; supported: identity"),
                            {{"header", "connect-content-encoding"}}),
             "");
    return;
  }
  // Exactly one request message, uncompressed.
  grpc::Status st;
  std::string payload;
  {
    absl::string_view b = req.body;
    int messages = 0;
    while (st.ok() && !b.empty()) {
      if (b.size() < 5) {
        st = InvalidBody("truncated envelope");
        break;
      }
      const uint8_t flags = static_cast<uint8_t>(b[0]);
      const uint32_t n = (uint32_t{static_cast<uint8_t>(b[1])} << 24) |
                         (uint32_t{static_cast<uint8_t>(b[2])} << 16) |
                         (uint32_t{static_cast<uint8_t>(b[3])} << 8) | static_cast<uint8_t>(b[4]);
      if (b.size() - 5 < n) {
        st = InvalidBody("truncated envelope");
        break;
      }
      if (flags != 0) st = InvalidBody("request envelopes take no flags (no compression)");
      payload = std::string(b.substr(5, n));
      b.remove_prefix(5 + n);
      ++messages;
    }
    if (st.ok() && messages != 1)
      st = InvalidBody(absl::StrCat(
          "a server-streaming call takes exactly one request message, got ", messages));
  }
  grpc::ClientContext ctx;
  std::string request_bytes;
  if (st.ok()) st = PrepareContext(req, &ctx);
  if (st.ok()) st = ParseRequest(method, json, payload, &request_bytes);
  out->StartStream(headers);
  if (!st.ok()) {
    end_with(st, "");
    return;
  }

  // The call: a generic (bidi-shaped) stream on a completion queue of its own,
  // so that an idle stream can notice a client that went away.
  grpc::CompletionQueue cq;
  const std::string path = absl::StrCat("/", method->service()->full_name(), "/", method->name());
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call = stub_.PrepareCall(&ctx, path, &cq);
  bool cancelled = false;
  // Waits for the operation tagged `want`; returns its `ok`.
  auto wait = [&](void* want) {
    for (;;) {
      void* tag = nullptr;
      bool ok = false;
      const auto next = cq.AsyncNext(
          &tag, &ok,
          std::chrono::system_clock::now() + absl::ToChronoMilliseconds(options_.poll_interval));
      if (next == grpc::CompletionQueue::GOT_EVENT) {
        if (tag == want) return ok;
        continue;
      }
      if (next == grpc::CompletionQueue::SHUTDOWN) return false;
      if (!cancelled && out->ClientGone()) {
        cancelled = true;
        ctx.TryCancel();
      }
    }
  };
  int tags[4];
  void* const kStart = &tags[0];
  void* const kWrite = &tags[1];
  void* const kRead = &tags[2];
  void* const kFinish = &tags[3];
  call->StartCall(kStart);
  bool ok = wait(kStart);
  if (ok) {
    const grpc::ByteBuffer request = ToByteBuffer(request_bytes);
    call->WriteLast(request, grpc::WriteOptions(), kWrite);
    ok = wait(kWrite);
  }
  while (ok) {
    grpc::ByteBuffer msg;
    call->Read(&msg, kRead);
    if (!wait(kRead)) break;
    std::string body;
    if (!FormatResponse(method, json, ToString(msg), &body)) {
      st = service::Error(grpc::StatusCode::INTERNAL, Reason::kInternal,
                          "a response message could not be converted");
      cancelled = true;
      ctx.TryCancel();
      continue;  // the next Read fails; Finish collects the call
    }
    if (!out->Write(Envelope(0, body)) && !cancelled) {
      cancelled = true;
      ctx.TryCancel();
    }
  }
  grpc::Status status;
  call->Finish(&status, kFinish);
  wait(kFinish);
  cq.Shutdown();
  void* tag;
  bool ignored;
  while (cq.Next(&tag, &ignored)) {
  }
  if (!st.ok()) status = st;
  // Trailing metadata as {"key": ["value", ...]}.
  std::map<std::string, std::vector<std::string>> trailers;
  for (const auto& [k, v] : ctx.GetServerTrailingMetadata()) {
    const absl::string_view key(k.data(), k.size());
    if (ForwardedKey(key)) trailers[std::string(key)].push_back(MetadataValue(key, v));
  }
  std::string metadata;
  for (const auto& [key, values] : trailers) {
    absl::StrAppend(&metadata, metadata.empty() ? "{" : ",", JsonQuote(key), ":[");
    for (size_t i = 0; i < values.size(); ++i)
      absl::StrAppend(&metadata, i ? "," : "", JsonQuote(values[i]));
    metadata += "]";
  }
  if (!metadata.empty()) metadata += "}";
  end_with(status, metadata);
}

}  // namespace memnode::http

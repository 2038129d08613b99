// The memnode API from the browser: Connect clients (@connectrpc/connect-web)
// in JSON mode on the page's own origin (memnoded serves the page and the
// API on the same port). A bearer token, when given, is kept for the tab
// (sessionStorage) and sent as `Authorization: Bearer <token>`.
import { ConnectError, Code, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { ErrorInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import { MachineService } from "../gen/memnode/v1/machine_pb.js";
import { ProcessService } from "../gen/memnode/v1/process_pb.js";
import { KsmService } from "../gen/memnode/v1/ksm_pb.js";
import { MemoryBlockService } from "../gen/memnode/v1/hotplug_pb.js";
import { EventService } from "../gen/memnode/v1/events_pb.js";

const TOKEN_KEY = "memnode.token";

export function getToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) ?? "";
  } catch {
    return "";
  }
}

export function setToken(t) {
  try {
    if (t) sessionStorage.setItem(TOKEN_KEY, t);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // storage unavailable: the token lasts until reload
  }
  memoryToken = t;
}

let memoryToken = getToken();

const auth = (next) => async (req) => {
  if (memoryToken) req.header.set("Authorization", `Bearer ${memoryToken}`);
  return next(req);
};

const transport = createConnectTransport({
  baseUrl: window.location.origin,
  useBinaryFormat: false,
  interceptors: [auth],
});

export const api = {
  machines: createClient(MachineService, transport),
  processes: createClient(ProcessService, transport),
  ksm: createClient(KsmService, transport),
  blocks: createClient(MemoryBlockService, transport),
  events: createClient(EventService, transport),
};

// "CODE REASON: message" of an error (reason from the ErrorInfo detail).
export function describeError(err) {
  const e = ConnectError.from(err);
  const info = e.findDetails(ErrorInfoSchema)[0];
  return `${Code[e.code] ?? e.code}${info ? " " + info.reason : ""}: ${e.rawMessage}`;
}

export function reasonOf(err) {
  const info = ConnectError.from(err).findDetails(ErrorInfoSchema)[0];
  return info ? info.reason : "";
}

export { Code, ConnectError };

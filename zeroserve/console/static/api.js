// The control API as the console calls it: the token from session storage, errors as ApiError.
// The token is never put in a URL (no query string, no fragment): it travels only in the Authorization header.

const TOKEN_KEY = "zeroserve.token";
export const API = "/api/v1";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export const session = {
  token: () => sessionStorage.getItem(TOKEN_KEY),
  signIn: (token) => sessionStorage.setItem(TOKEN_KEY, token),
  signOut: () => sessionStorage.removeItem(TOKEN_KEY),
};

// Called when the API answers 401: the token is gone or was revoked.
let onUnauthorized = () => {};
export function whenUnauthorized(callback) { onUnauthorized = callback; }

function headers(extra = {}) {
  return { Authorization: `Bearer ${session.token() || ""}`, ...extra };
}

async function answer(response) {
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = null; }
  if (!response.ok) {
    if (response.status === 401) onUnauthorized();
    const message = body && typeof body.error === "string" ? body.error : `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, message);
  }
  return body;
}

export async function apiGet(path, { signal } = {}) {
  return answer(await fetch(API + path, { headers: headers(), signal, cache: "no-store" }));
}

export async function apiSend(method, path, body) {
  const init = { method, headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  return answer(await fetch(API + path, init));
}

// NDJSON lines (`GET .../logs?follow=true`) as they come, until `signal` aborts.
export async function apiFollow(path, onItem, signal) {
  const response = await fetch(API + path, { headers: headers(), signal, cache: "no-store" });
  if (!response.ok) return answer(response);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return null;
    buffered += decoder.decode(value, { stream: true });
    const lines = buffered.split("\n");
    buffered = lines.pop();
    for (const line of lines) if (line.trim()) onItem(JSON.parse(line));
  }
}

export const fn = (name) => `/functions/${encodeURIComponent(name)}`;

// The console's shell: sign-in and sign-out, the hash routes (#/functions, #/functions/<name>, #/events),
// and one refresh loop for the page on screen (polling the API every 2 s; a failed poll is shown, not fatal).

import { ApiError, apiGet, session, whenUnauthorized } from "./api.js";
import { clock, h } from "./dom.js";
import { renderEvents } from "./page_events.js";
import { renderFunction } from "./page_function.js";
import { REFRESH_MS, renderFunctions } from "./page_functions.js";

const $ = (id) => document.getElementById(id);
let current = null;  // { refresh, abort, timer } of the page on screen

function showLive(error) {
  $("live").textContent = error ? `not updated: ${error}` : `live · updated ${clock(Date.now() / 1000)}`;
  $("live").classList.toggle("stale", Boolean(error));
}

function stopPage() {
  if (current) {
    clearTimeout(current.timer);
    current.abort.abort();
    current = null;
  }
}

function showSignIn(message = "") {
  stopPage();
  $("nav").hidden = true;
  $("sign-out").hidden = true;
  $("live").textContent = "";
  $("view").replaceChildren();
  $("sign-in").hidden = false;
  $("sign-in-error").textContent = message;
  $("token").focus();
}

async function route() {
  stopPage();
  if (!session.token()) return showSignIn();
  $("sign-in").hidden = true;
  $("nav").hidden = false;
  $("sign-out").hidden = false;
  const hash = location.hash.replace(/^#/, "") || "/functions";
  const page = hash.split("/")[1];
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === page) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const view = $("view");
  const abort = new AbortController();
  const mine = { abort, timer: 0, refresh: null };
  current = mine;
  view.replaceChildren(h("p", { role: "status" }, "Loading…"));
  try {
    const match = hash.match(/^\/functions\/([^/]+)$/);
    if (match) {
      const name = decodeURIComponent(match[1]);
      document.title = `${name} · zeroserve console`;
      mine.refresh = await renderFunction(view, name, () => showLive(), abort.signal);
    } else if (page === "events") {
      document.title = "Events · zeroserve console";
      mine.refresh = await renderEvents(view, () => showLive());
    } else {
      document.title = "Functions · zeroserve console";
      mine.refresh = await renderFunctions(view, () => showLive());
    }
  } catch (exc) {
    if (current !== mine) return;
    const scoped = exc instanceof ApiError && exc.status === 403
      ? h("p", {}, "A token scoped to some functions opens their pages by name: ", h("code", {}, "#/functions/NAME"), ".")
      : null;
    view.replaceChildren(h("h1", {}, "Cannot show this page"), h("p", { class: "error", role: "alert" }, exc.message),
      scoped, h("p", {}, h("a", { href: "#/functions" }, "Back to the functions")));
    return;
  }
  if (current === mine) schedule(mine);
}

function schedule(page) {
  page.timer = setTimeout(async () => {
    if (current !== page) return;
    try {
      await page.refresh();
    } catch (exc) {
      if (current === page) showLive(exc instanceof ApiError ? exc.message : "the platform did not answer");
    }
    if (current === page) schedule(page);
  }, REFRESH_MS);
}

async function signIn(event) {
  event.preventDefault();
  const token = $("token").value.trim();
  if (!token) {
    $("sign-in-error").textContent = "Enter the platform token.";
    return;
  }
  session.signIn(token);
  try {
    await apiGet("/functions");  // checks the token before showing anything
  } catch (exc) {
    // A 403 is a valid token scoped to some functions: it stays, and their pages open by name.
    if (!(exc instanceof ApiError && exc.status === 403)) {
      session.signOut();
      showSignIn(exc instanceof ApiError && exc.status === 401 ? `Sign-in refused: ${exc.message}` : exc.message);
      return;
    }
  }
  $("token").value = "";
  await route();
  $("main").focus();
}

function signOut() {
  session.signOut();
  location.hash = "";
  showSignIn("Signed out.");
}

whenUnauthorized(() => {
  session.signOut();
  showSignIn("The platform refused the token (revoked or wrong): sign in again.");
});

$("sign-in-form").addEventListener("submit", signIn);
$("sign-out").addEventListener("click", signOut);
window.addEventListener("hashchange", route);
route();

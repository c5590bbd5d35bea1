// Signing in to a server that has API keys (docs/security.md).
//
// GET api/session says whether this browser needs a key. If it does, a form
// asks for a read or admin key and POSTs it once to api/session, which sets
// it as a session cookie: HttpOnly (no script, this one included, can read
// it back), SameSite=Strict, gone when the browser closes. The key is never
// put in a URL or in web storage. The live stream sends the cookie like
// every other request. main.js waits for `authReady` before it loads data.

const HEADERS = { Accept: "application/json", "X-Requested-With": "AgentWatch" };
const CREATE = "agentwatch keys create --scope read --name dashboard";

let started = false;
let resolveStart;
export const authReady = new Promise((resolve) => {
  resolveStart = resolve;
});

function resolveReady() {
  started = true;
  resolveStart();
}

let dialog = null;

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

async function call(method, body) {
  const init = { method, headers: { ...HEADERS } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch("api/session", init);
  let data = {};
  try {
    data = await resp.json();
  } catch {
    // not JSON (an old server without this route): treated as "no sign-in"
  }
  return { ok: resp.ok, status: resp.status, data };
}

function buildDialog() {
  const input = el("input", {
    id: "signin-key",
    type: "password",
    name: "key",
    autocomplete: "off",
    spellcheck: "false",
    required: "",
    placeholder: "agentwatch_…",
  });
  const error = el("p", { id: "signin-error", class: "signin-error", role: "alert" });
  error.hidden = true;
  const form = el(
    "form",
    { id: "signin-form", class: "signin-form" },
    el("h1", { id: "signin-title" }, "Sign in to AgentWatch"),
    el("p", { id: "signin-lead", class: "signin-lead" }),
    el("label", { for: "signin-key" }, "API key"),
    input,
    error,
    el("button", { type: "submit", class: "btn signin-submit" }, "Sign in"),
    el(
      "p",
      { class: "muted small" },
      "No key yet? On the server run ",
      el("code", {}, CREATE),
      ". The key is kept for this browser session only, in a cookie that page scripts cannot read.",
    ),
  );
  const d = el("dialog", { id: "signin", class: "signin", "aria-labelledby": "signin-title" }, form);
  // The dashboard is useless without a key: Escape does not close the form.
  d.addEventListener("cancel", (e) => e.preventDefault());
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    submit(input, error);
  });
  document.body.append(d);
  return d;
}

async function submit(input, error) {
  const key = input.value.trim();
  if (!key) return;
  const button = dialog.querySelector(".signin-submit");
  button.disabled = true;
  error.hidden = true;
  try {
    const r = await call("POST", { key });
    if (r.ok && r.data.signed_in) {
      input.value = "";
      if (started) {
        // Signed in again after the dashboard had started: start over cleanly.
        window.location.reload();
        return;
      }
      dialog.close();
      document.documentElement.dataset.auth = "signed-in";
      addSignOut(r.data);
      resolveReady();
      return;
    }
    error.textContent =
      r.status === 401
        ? "That key was not accepted: it is unknown or has been revoked."
        : r.data.detail || `Sign-in failed (HTTP ${r.status}).`;
    error.hidden = false;
    input.select();
  } catch (err) {
    error.textContent = "The server could not be reached; try again.";
    error.hidden = false;
  } finally {
    button.disabled = false;
  }
}

function showForm(info, lead) {
  dialog ??= buildDialog();
  dialog.querySelector("#signin-lead").textContent = lead;
  document.documentElement.dataset.auth = info.auth === "protected" ? "protected" : "required";
  if (!dialog.open) dialog.showModal();
  dialog.querySelector("#signin-key").focus();
}

function addSignOut(info) {
  if (document.getElementById("signout")) return;
  const button = el(
    "button",
    { type: "button", id: "signout", class: "btn signout", title: `Signed in with the key "${info.name}" (${info.scope})` },
    "Sign out",
  );
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await call("DELETE");
    } finally {
      window.location.reload();
    }
  });
  (document.querySelector(".topbar .status") || document.querySelector(".topbar") || document.body).append(button);
}

/** A request was refused for want of a key (revoked, or keys created meanwhile). */
export function signInAgain() {
  if (dialog?.open) return;
  showForm({ auth: "keys" }, "Your session has ended: the key was revoked, or this server now requires a key. Sign in again with a read or admin key.");
}

async function check() {
  let r;
  try {
    r = await call("GET");
  } catch {
    resolveReady(); // the server is down: the dashboard shows that itself
    return;
  }
  const info = r.data;
  if (!r.ok || !info.required) {
    document.documentElement.dataset.auth = info.auth || "none";
    resolveReady();
    return;
  }
  if (info.signed_in) {
    document.documentElement.dataset.auth = "signed-in";
    addSignOut(info);
    resolveReady();
    return;
  }
  if (info.auth === "protected") {
    showForm(
      info,
      "This server has no API keys yet, so it serves only its own machine. Create a read key on the server, then sign in with it here.",
    );
  } else {
    showForm(info, "This server requires an API key. Sign in with a key that has the read or admin scope.");
  }
}

check();

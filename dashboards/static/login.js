// The login page: POST /api/login, then back to the page that sent the browser here.
// No inline script (the CSP forbids it); messages are set as text, never as HTML.

const MESSAGES = {
  401: { "zh-CN": "用户名或密码错误", en: "Wrong username or password" },
  429: { "zh-CN": "失败次数过多，请稍后再试", en: "Too many failed logins; try again later" },
  other: { "zh-CN": "登录失败，请稍后再试", en: "Login failed; try again later" },
};

function say(kind) {
  const text = MESSAGES[kind] || MESSAGES.other;
  document.getElementById("message").textContent = `${text["zh-CN"]} / ${text.en}`;
}

// Only a path of this site: never "//elsewhere" or "https://elsewhere".
function nextPath() {
  const next = new URLSearchParams(window.location.search).get("next") || "/";
  return /^\/(?![/\\])/.test(next) && next !== "/login" ? next : "/";
}

async function logIn(event) {
  event.preventDefault();
  const button = document.getElementById("submit");
  button.disabled = true;
  try {
    const response = await fetch("/api/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      credentials: "same-origin",
      body: JSON.stringify({
        username: document.getElementById("username").value,
        password: document.getElementById("password").value,
      }),
    });
    if (response.ok) {
      window.location.assign(nextPath());
      return;
    }
    say(response.status === 401 || response.status === 429 ? response.status : "other");
  } catch {
    say("other");
  } finally {
    button.disabled = false;
  }
}

document.getElementById("login-form").addEventListener("submit", logIn);

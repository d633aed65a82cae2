// Latch hosted pages: a small script that drives the Experience API with
// the interaction cookie (the same API integrators use). No framework, no
// inline script (the Content-Security-Policy forbids it).
"use strict";
(function () {
  var body = document.body;
  var page = body.dataset.page;
  var request = body.dataset.request || "";
  var params = new URLSearchParams(location.search);

  // Readable messages for the Experience API's error codes.
  var messages = {
    "session.invalid_credentials": "The username or password is incorrect.",
    "session.verification_blocked_too_many_attempts": "Too many failed attempts. Wait a few minutes and try again.",
    "user.suspended": "This account is suspended.",
    "password.expired": "Your password has expired. Use “Forgot your password?” to choose a new one.",
    "password.temporary": "Your password is temporary. Use “Forgot your password?” to choose your own.",
    "session.not_found": "This sign-in has expired. Go back to the application and start again.",
    "session.identifier_not_found": "No account matches what you entered.",
    "user.user_not_exist": "No account matches what you entered.",
    "session.verification_failed": "That did not work. Check what you entered and try again.",
    "verification_code.code_mismatch": "The code is incorrect.",
    "verification_code.expired": "The code has expired. Ask for a new one.",
    "verification_code.exceed_max_try": "Too many wrong codes. Ask for a new one.",
    "verification_code.not_found": "Ask for a code first.",
    "verification_code.already_used": "This code was already used. Ask for a new one.",
    "user.sign_in_method_not_enabled": "This way of signing in is not enabled.",
    "session.interaction_event_not_enabled": "This is not available here.",
    "user.password_policy_violation": "Choose a stronger password.",
    "password.rejected": "Choose a stronger password.",
    "user.same_password": "Choose a password you have not used before.",
    "user.username_already_in_use": "This username is taken.",
    "user.email_already_in_use": "An account with this e-mail already exists.",
    "user.phone_already_in_use": "An account with this phone number already exists.",
    "session.identity_conflict": "An account with these details already exists.",
    "user.missing_profile": "Some required details are missing.",
    "session.mfa.invalid_totp_code": "The authenticator code is incorrect.",
    "session.mfa.invalid_backup_code": "The backup code is incorrect or already used.",
    "session.mfa.webauthn_verification_failed": "The passkey could not be verified.",
    "guard.invalid_input": "Check the highlighted fields.",
    "request.too_many_requests": "Too many requests. Wait a moment and try again.",
    "webauthn.cancelled": "The passkey prompt was cancelled or timed out.",
    "user.identity_not_exist": "No account is linked to this sign-in, and new accounts cannot be created here.",
    "session.sso_enabled": "Your organization signs you in with single sign-on.",
    "connector.invalid_response": "The sign-in provider could not be reached. Try again later.",
    "upstream.failed": "The sign-in provider did not sign you in."
  };

  function $(id) { return document.getElementById(id); }

  function showError(err) {
    var box = $("error");
    var text = (err && messages[err.code]) || (err && err.message) || "Something went wrong. Try again.";
    box.textContent = text;
    box.hidden = false;
    box.focus();
  }

  function notice(text) {
    var n = $("notice");
    n.textContent = text;
    n.hidden = false;
  }

  function clearError() { $("error").hidden = true; }

  // api calls the Experience API; a refusal throws {code, message, data}.
  function api(method, path, payload) {
    var init = { method: method, credentials: "same-origin", headers: { "Content-Type": "application/json", "Accept": "application/json" } };
    if (payload !== undefined) { init.body = JSON.stringify(payload); }
    return fetch("/api/experience" + path, init).then(function (res) {
      if (res.status === 204) { return {}; }
      return res.json().then(function (data) {
        if (!res.ok) { throw data; }
        return data;
      }, function () {
        if (!res.ok) { throw { code: "", message: "The server answered " + res.status + "." }; }
        return {};
      });
    });
  }

  // identifierOf guesses what a person typed: an e-mail, a phone number or
  // a username.
  function identifierOf(value) {
    value = value.trim();
    if (value.indexOf("@") > 0) { return { type: "email", value: value }; }
    if (/^\+?[0-9][0-9 ()\-.]{5,}$/.test(value)) { return { type: "phone", value: value.replace(/[ ()\-.]/g, "") }; }
    return { type: "username", value: value };
  }

  function go(path, extra) {
    var q = new URLSearchParams(extra || {});
    q.set("request", request);
    location.assign(path + "?" + q.toString());
  }

  // submit finishes the interaction: redirectTo goes back through the
  // authorization endpoint; MFA answers lead to the MFA pages.
  function submit() {
    return api("POST", "/submit").then(function (res) {
      if (res.redirectTo) { location.assign(res.redirectTo); return; }
      throw { message: "Unexpected answer from the server." };
    }, function (err) {
      // A refusal that ends the sign-in (not a member of the organization
      // the application asked for) goes back to the application.
      if (err.data && err.data.redirectTo) { location.assign(err.data.redirectTo); return; }
      var factors = (err.data && err.data.availableFactors) || [];
      if (err.code === "session.mfa.require_mfa_verification") {
        go("/ui/mfa", { factors: factors.join(",") });
        return;
      }
      if (err.code === "user.missing_mfa" || err.code === "user.suggest_mfa") {
        go("/ui/mfa-enroll", { factors: factors.join(","), skippable: err.code === "user.suggest_mfa" ? "1" : "" });
        return;
      }
      throw err;
    });
  }

  // busy runs an async step with the form's buttons disabled and shows
  // whatever error it ends in.
  function busy(form, step) {
    return function (ev) {
      if (ev) { ev.preventDefault(); }
      clearError();
      var buttons = form.querySelectorAll("button");
      buttons.forEach(function (b) { b.disabled = true; });
      Promise.resolve().then(step).catch(showError).then(function () {
        buttons.forEach(function (b) { b.disabled = false; });
      });
    };
  }

  function value(id) { var el = $(id); return el ? el.value : ""; }

  function verifyCodeThenIdentify(identifier, vid, code) {
    return api("POST", "/verification/verification-code/verify", { identifier: identifier, verificationId: vid, code: code.trim() });
  }

  // --- WebAuthn: the options and responses travel as base64url JSON.
  function b64uToBuf(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) { s += "="; }
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { out[i] = bin.charCodeAt(i); }
    return out.buffer;
  }
  function bufToB64u(buf) {
    var bytes = new Uint8Array(buf), bin = "";
    for (var i = 0; i < bytes.length; i++) { bin += String.fromCharCode(bytes[i]); }
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function decodeOptions(o) {
    var pk = o.publicKey || o;
    pk.challenge = b64uToBuf(pk.challenge);
    if (pk.user && pk.user.id) { pk.user.id = b64uToBuf(pk.user.id); }
    (pk.excludeCredentials || []).forEach(function (c) { c.id = b64uToBuf(c.id); });
    (pk.allowCredentials || []).forEach(function (c) { c.id = b64uToBuf(c.id); });
    return { publicKey: pk };
  }
  function encodeCredential(cred) {
    var r = cred.response, out = { id: cred.id, rawId: bufToB64u(cred.rawId), type: cred.type, response: { clientDataJSON: bufToB64u(r.clientDataJSON) } };
    if (r.attestationObject) {
      out.response.attestationObject = bufToB64u(r.attestationObject);
      if (r.getTransports) { out.response.transports = r.getTransports(); }
    } else {
      out.response.authenticatorData = bufToB64u(r.authenticatorData);
      out.response.signature = bufToB64u(r.signature);
      if (r.userHandle) { out.response.userHandle = bufToB64u(r.userHandle); }
    }
    out.clientExtensionResults = cred.getClientExtensionResults ? cred.getClientExtensionResults() : {};
    return out;
  }
  function passkey(register) {
    var path = register ? "/verification/web-authn/registration" : "/verification/web-authn/authentication";
    return api("POST", path).then(function (res) {
      var opts = decodeOptions(register ? res.registrationOptions : res.authenticationOptions);
      var p = register ? navigator.credentials.create(opts) : navigator.credentials.get(opts);
      return p.then(function (cred) {
        if (!cred) { throw { code: "webauthn.cancelled" }; }
        return api("POST", path + "/verify", { verificationId: res.verificationId, payload: encodeCredential(cred) });
      }, function () { throw { code: "webauthn.cancelled" }; });
    });
  }

  // --- Social and SSO sign-in: the round trip goes through Latch's own
  // callback page. What the callback needs (record, connector, state,
  // request) waits in sessionStorage: it never leaves this tab.
  var upstreamKey = "latch.upstream";

  function randomState() {
    var b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return bufToB64u(b.buffer);
  }

  function startUpstream(family, connector, callback) {
    var state = randomState();
    var base = "/verification/" + family + "/" + encodeURIComponent(connector);
    return api("PUT", "/interaction-event", { interactionEvent: "SignIn" }).then(function () {
      return api("POST", base + "/authorization-uri", { state: state, redirectUri: callback });
    }).then(function (res) {
      sessionStorage.setItem(upstreamKey, JSON.stringify({ family: family, connector: connector, state: state,
        verificationId: res.verificationId, request: request, register: !!($("upstream") && $("upstream").dataset.register) }));
      location.assign(res.authorizationUri);
    });
  }

  // identifyUpstream identifies the person a verified social or SSO record
  // names; an identity no account has yet registers one where sign-up is
  // open (seed 004: the interaction switches to Register).
  function identifyUpstream(saved) {
    return api("POST", "/identification", { verificationId: saved.verificationId }).catch(function (err) {
      if (err.code === "user.identity_not_exist" && err.data && err.data.relatedUser) {
        throw { message: "An account with " + err.data.relatedUser + " already exists. Sign in to it the usual way." };
      }
      if (err.code !== "user.identity_not_exist" || !saved.register) { throw err; }
      return api("PUT", "/interaction-event", { interactionEvent: "Register" }).then(function () {
        return api("POST", "/identification", { verificationId: saved.verificationId });
      });
    });
  }

  // --- Pages.
  var pages = {};

  pages["callback"] = function () {
    var root = $("callback"), back = $("callback-back");
    var saved = null;
    try { saved = JSON.parse(sessionStorage.getItem(upstreamKey) || "null"); } catch (e) { saved = null; }
    sessionStorage.removeItem(upstreamKey);
    function fail(err) {
      $("callback-status").hidden = true;
      $("title").textContent = "Sign-in not completed";
      showError(err);
      if (saved && saved.request) {
        back.href = "/ui/sign-in?request=" + encodeURIComponent(saved.request);
        back.hidden = false;
      }
    }
    if (!saved || params.get("state") !== saved.state) {
      fail({ message: "This sign-in could not be completed. Go back to the application and try again." });
      return;
    }
    request = saved.request;
    if (params.get("error") || !params.get("code")) {
      fail({ code: "upstream.failed" });
      return;
    }
    var base = "/verification/" + saved.family + "/" + encodeURIComponent(saved.connector);
    api("POST", base + "/verify", { verificationId: saved.verificationId,
      connectorData: { code: params.get("code"), state: params.get("state"), redirectUri: root.dataset.callback } })
      .then(function () { return identifyUpstream(saved); })
      .then(submit)
      .catch(fail);
  };

  pages["sign-in"] = function () {
    var form = $("password-form"), codeForm = $("code-form"), codeStart = $("code-start");
    var codeIdent = null, codeVID = "";
    var upstream = $("upstream");
    if (upstream) {
      upstream.querySelectorAll("[data-social]").forEach(function (b) {
        b.addEventListener("click", busy(upstream, function () {
          return startUpstream("social", b.dataset.social, upstream.dataset.callback);
        }));
      });
    }
    // SSO: an e-mail whose domain an enterprise connector owns signs in
    // there (the password is not asked for).
    function ssoFor(id) {
      if (!upstream || !upstream.dataset.sso || id.type !== "email") { return Promise.resolve(""); }
      return api("GET", "/sso-connectors?email=" + encodeURIComponent(id.value)).then(function (res) {
        return (res.connectorIds || [])[0] || "";
      });
    }
    // The submit button says where it leads; only its label changes, so
    // nothing moves under a pointer on its way to it.
    var submitButton = form.querySelector("button[type=submit]");
    if (upstream && upstream.dataset.sso && submitButton) {
      var label = submitButton.textContent;
      $("identifier").addEventListener("change", function () {
        ssoFor(identifierOf(value("identifier"))).then(function (c) {
          submitButton.textContent = c ? "Continue with single sign-on" : label;
        }, function () { submitButton.textContent = label; });
      });
    }
    form.addEventListener("submit", busy(form, function () {
      var id = identifierOf(value("identifier"));
      if (!id.value) { throw { message: "Enter your username, e-mail or phone number." }; }
      return ssoFor(id).then(function (c) {
        if (c) { return startUpstream("sso", c, upstream.dataset.callback); }
        return signInWithPassword(id);
      });
    }));
    function signInWithPassword(id) {
      return api("PUT", "/interaction-event", { interactionEvent: "SignIn" }).then(function () {
        return api("POST", "/verification/password", { identifier: id, password: value("password") });
      }).then(function (rec) {
        return api("POST", "/identification", { verificationId: rec.verificationId });
      }).then(submit);
    }
    if (codeStart) {
      codeStart.addEventListener("click", busy(form, function () {
        codeIdent = identifierOf(value("identifier"));
        if (codeIdent.type === "username") { throw { message: "Enter an e-mail address or a phone number to get a code." }; }
        return api("PUT", "/interaction-event", { interactionEvent: "SignIn" }).then(function () {
          return api("POST", "/verification/verification-code", { identifier: codeIdent, interactionEvent: "SignIn" });
        }).then(function (rec) {
          codeVID = rec.verificationId;
          $("code-to").textContent = codeIdent.value;
          form.hidden = true;
          codeForm.hidden = false;
          $("code").focus();
        });
      }));
      codeForm.addEventListener("submit", busy(codeForm, function () {
        return verifyCodeThenIdentify(codeIdent, codeVID, value("code")).then(function () {
          return api("POST", "/identification", { verificationId: codeVID });
        }).then(submit);
      }));
    }
  };

  pages["register"] = function () {
    var form = $("register-form"), codeForm = $("register-code-form");
    var addr = null, vid = "";
    function finish() {
      var steps = Promise.resolve();
      if ($("username") && addr) {
        steps = steps.then(function () { return api("POST", "/profile", { type: "username", value: value("username").trim() }); });
      }
      if ($("password") && addr) {
        steps = steps.then(function () { return api("POST", "/profile", { type: "password", value: value("password") }); });
      }
      return steps.then(function () { return api("POST", "/identification", { verificationId: vid }); }).then(submit);
    }
    form.addEventListener("submit", busy(form, function () {
      return api("PUT", "/interaction-event", { interactionEvent: "Register" }).then(function () {
        if ($("email") || $("phone")) {
          addr = $("email") ? { type: "email", value: value("email").trim() } : { type: "phone", value: value("phone").trim() };
          return api("POST", "/verification/verification-code", { identifier: addr, interactionEvent: "Register" }).then(function (rec) {
            vid = rec.verificationId;
            $("code-to").textContent = addr.value;
            form.hidden = true;
            codeForm.hidden = false;
            $("code").focus();
          });
        }
        return api("POST", "/verification/new-password-identity", {
          identifier: { type: "username", value: value("username").trim() }, password: value("password")
        }).then(function (rec) { vid = rec.verificationId; return finish(); });
      });
    }));
    codeForm.addEventListener("submit", busy(codeForm, function () {
      return verifyCodeThenIdentify(addr, vid, value("code")).then(finish);
    }));
  };

  pages["forgot-password"] = function () {
    var form = $("forgot-form"), reset = $("reset-form");
    var id = null, vid = "";
    form.addEventListener("submit", busy(form, function () {
      id = identifierOf(value("identifier"));
      if (id.type === "username") { throw { message: "Enter the e-mail address or phone number of your account." }; }
      return api("POST", "/verification/verification-code", { identifier: id, interactionEvent: "ForgotPassword" }).then(function (rec) {
        vid = rec.verificationId;
        $("code-to").textContent = id.value;
        form.hidden = true;
        reset.hidden = false;
        notice("If an account uses " + id.value + ", a code is on its way.");
        $("code").focus();
      });
    }));
    reset.addEventListener("submit", busy(reset, function () {
      return verifyCodeThenIdentify(id, vid, value("code")).then(function () {
        return api("POST", "/identification", { verificationId: vid });
      }).then(function () {
        return api("PUT", "/profile/password", { password: value("password") });
      }).then(function () {
        return api("POST", "/submit");
      }).then(function (res) {
        if (res.redirectTo) { location.assign(res.redirectTo); }
      });
    }));
  };

  function factorList() { return (params.get("factors") || "").split(",").filter(Boolean); }

  pages["mfa"] = function () {
    var form = $("mfa-form"), chosen = "", vid = "";
    var labels = { Totp: "Code from your authenticator app", BackupCode: "Backup code",
      EmailVerificationCode: "Code sent to your e-mail", PhoneVerificationCode: "Code sent to your phone" };
    var buttons = document.querySelectorAll("[data-factor]");
    factorList().forEach(function (f) {
      var b = document.querySelector('[data-factor="' + f + '"]');
      if (b) { b.hidden = false; }
    });
    buttons.forEach(function (b) {
      b.addEventListener("click", busy($("factors"), function () {
        chosen = b.dataset.factor;
        if (chosen === "WebAuthn") {
          return passkey(false).then(submit);
        }
        $("mfa-label").textContent = labels[chosen];
        form.hidden = false;
        $("mfa-code").value = "";
        $("mfa-code").focus();
        if (chosen === "EmailVerificationCode" || chosen === "PhoneVerificationCode") {
          return api("POST", "/verification/mfa-verification-code", { identifierType: chosen === "EmailVerificationCode" ? "email" : "phone" })
            .then(function (rec) { vid = rec.verificationId; notice("A code is on its way."); });
        }
      }));
    });
    form.addEventListener("submit", busy(form, function () {
      var code = value("mfa-code").trim(), step;
      if (chosen === "Totp") { step = api("POST", "/verification/totp/verify", { code: code }); }
      else if (chosen === "BackupCode") { step = api("POST", "/verification/backup-code/verify", { code: code }); }
      else {
        step = api("POST", "/verification/mfa-verification-code/verify", {
          identifierType: chosen === "EmailVerificationCode" ? "email" : "phone", verificationId: vid, code: code });
      }
      return step.then(submit);
    }));
  };

  pages["mfa-enroll"] = function () {
    var factors = factorList(), totpVID = "";
    factors.forEach(function (f) {
      var b = document.querySelector('[data-enroll="' + f + '"]');
      if (b) { b.hidden = false; }
    });
    var skip = $("mfa-skip");
    if (params.get("skippable") === "1") { skip.hidden = false; }
    skip.addEventListener("click", busy($("factors"), function () {
      return api("POST", "/profile/mfa/mfa-skipped").then(submit);
    }));
    // After a first factor, backup codes to save (when enabled), then submit.
    // Backup codes are never a first factor, so the list of factors to
    // enrol does not name them: offer them whenever the server allows.
    function afterFirstFactor() {
      return api("POST", "/verification/backup-code/generate").then(function (res) {
        var list = $("backup-list");
        res.codes.forEach(function (c) { var li = document.createElement("li"); li.textContent = c; list.appendChild(li); });
        $("totp-enroll").hidden = true;
        $("factors").hidden = true;
        $("backup-codes").hidden = false;
        $("backup-done").focus();
        $("backup-done").addEventListener("click", busy($("backup-codes"), function () {
          return api("POST", "/profile/mfa", { type: "BackupCode", verificationId: res.verificationId }).then(submit);
        }));
      }, function (err) {
        if (err.code === "session.mfa.mfa_factor_not_enabled") { return submit(); }
        throw err;
      });
    }
    document.querySelector('[data-enroll="Totp"]').addEventListener("click", busy($("factors"), function () {
      return api("POST", "/verification/totp/secret").then(function (res) {
        totpVID = res.verificationId;
        $("totp-qr").src = res.secretQrCode;
        $("totp-secret").textContent = res.secret;
        $("totp-enroll").hidden = false;
        $("totp-code").focus();
      });
    }));
    $("totp-form").addEventListener("submit", busy($("totp-form"), function () {
      return api("POST", "/verification/totp/verify", { verificationId: totpVID, code: value("totp-code").trim() }).then(function () {
        return api("POST", "/profile/mfa", { type: "Totp", verificationId: totpVID });
      }).then(afterFirstFactor);
    }));
    document.querySelector('[data-enroll="WebAuthn"]').addEventListener("click", busy($("factors"), function () {
      return passkey(true).then(function (rec) {
        return api("POST", "/profile/mfa", { type: "WebAuthn", verificationId: rec.verificationId });
      }).then(afterFirstFactor);
    }));
  };

  if (pages[page]) { pages[page](); }
})();

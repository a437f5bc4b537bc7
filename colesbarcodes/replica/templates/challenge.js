/* Replica of a JavaScript bot check: only a client that runs this script gets the cookies. */
(function () {
  var nonce = "__NONCE__";
  var seed = __SEED__, factor = __FACTOR__, modulus = __MODULUS__, rounds = __ROUNDS__;
  var x = seed;
  for (var i = 0; i < rounds; i++) {
    x = (x * factor + i) % modulus;
  }
  var token = nonce + "." + x.toString(16);
  document.cookie = "__COOKIE__=" + token + "; path=/; max-age=2592000";
  var extra = __EXTRA_COOKIES__;
  for (var j = 0; j < extra.length; j++) {
    document.cookie = extra[j] + "; path=/; max-age=2592000";
  }
  var protection = {
    cookieIsSet: function () {
      return document.cookie.indexOf("__COOKIE__=" + token) !== -1;
    }
  };
  if (typeof window.onProtectionInitialized === "function") {
    window.onProtectionInitialized(protection);
  }
})();

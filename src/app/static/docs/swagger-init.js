// Starts Swagger UI on /docs from the inert JSON in #swagger-config, so the page needs no
// inline script and works under a Content-Security-Policy with script-src 'self'.
"use strict";
(function () {
  var config = JSON.parse(document.getElementById("swagger-config").textContent);
  var initOAuth = config.initOAuth;
  delete config.initOAuth;
  if (config.oauth2RedirectUrl) {
    config.oauth2RedirectUrl = window.location.origin + config.oauth2RedirectUrl;
  }
  config.presets = [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset];
  window.ui = SwaggerUIBundle(config);
  if (initOAuth) {
    window.ui.initOAuth(initOAuth);
  }
})();

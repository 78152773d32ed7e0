// Starts Swagger UI on this server's own document. A file, not an inline script, so
// that the page's Content-Security-Policy can forbid inline scripts. validatorUrl null:
// Swagger UI would otherwise load a badge from validator.swagger.io.
/* global SwaggerUIBundle */
SwaggerUIBundle({ url: "/openapi.json", dom_id: "#ui", validatorUrl: null, deepLinking: false });

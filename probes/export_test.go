package probes

// ResolveConstants exposes resolveConstants to the external tests.
var ResolveConstants = resolveConstants

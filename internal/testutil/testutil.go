// Package testutil holds the helpers the integration tests share: a
// throwaway network namespace per test, privilege checks, an iproute2 oracle
// that runs inside that namespace, and an fd counter for leak checks.
package testutil

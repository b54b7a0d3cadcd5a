#!/usr/bin/env sh
# Make sure a Chromium the e2e tests can drive is installed: Debian's `chromium` package, used by
# Playwright through executable_path (no `playwright install`, no browser download from elsewhere).
# Idempotent: does nothing when the browser is already there. QWENKIT_CHROMIUM names another binary.
set -eu

if [ -n "${QWENKIT_CHROMIUM:-}" ] && [ -x "${QWENKIT_CHROMIUM}" ]; then
    exit 0
fi
for candidate in /usr/bin/chromium /usr/bin/chromium-browser; do
    if [ -x "$candidate" ]; then
        exit 0
    fi
done

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-browser: no chromium and no apt-get; install Chromium and set QWENKIT_CHROMIUM to its path" >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "ensure-browser: installing chromium needs root (or sudo)" >&2
        exit 1
    fi
fi

echo "ensure-browser: installing chromium with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >&2 || echo "ensure-browser: apt-get update failed, trying the cached lists" >&2
$SUDO apt-get install -y -q chromium >&2
test -x /usr/bin/chromium

#!/usr/bin/env bash
# Install the browser that tests/deployments/test_ui_browser.py drives: Debian's chromium.
# Playwright itself comes from pip with the dev extras (its wheel ships its own node driver);
# `playwright install` is never run, because it downloads a browser build and CI is offline.
# Safe to re-run: it does nothing when /usr/bin/chromium is already there.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
if [[ ! -x "$CHROMIUM" ]]; then
  export DEBIAN_FRONTEND=noninteractive
  # Without a fresh package list apt may not know chromium, or offer a version the mirror dropped.
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
fi
# A browser that is installed but cannot start (a missing library) should fail here, by name,
# rather than as a timeout deep inside the browser test.
"$CHROMIUM" --version

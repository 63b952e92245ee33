// What the one-page Chromium checks (deflate.mjs, sse.mjs) share: `--name value`
// argument lookup and a headless Chromium launch whose about:blank page may reach the
// loopback server.

import { chromium } from "playwright-core";

const argv = process.argv.slice(2);

// The value after `--name` on the command line, or `fallback`.
export const arg = (name, fallback) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1] : fallback;
};

// Headless Chromium ($CHROMIUM, else /usr/bin/chromium).
export const launch = () => chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  timeout: 30000,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    // about:blank is not a loopback page: let it reach the loopback server.
    "--disable-features=LocalNetworkAccessChecks",
  ],
});

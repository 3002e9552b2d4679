"""What the tests share (no tests here; no test module imports another test module).

  model          the model-test driver (`Run`): events in, emitted commands out, ids read from them
  builders       typed ARI events at explicit times, for the model tests
  stack          simulator + daemon + real PostgreSQL in one process
  calls          calls on that stack (tones, a bridged call, controls, event times)
  hooked         hook-mode calls on that stack (AGI hooks + Dial())
  daemon         the daemon as a real process, for crash and outage tests
  policy_paths   the table of call paths run through explain and the daemon
  sim_calls      simulator-level calls over ARI (transfer tests)
  agi            FastAGI faked on either side
  api_world      a seeded database, users and the app on it (API, web, audit tests)
  callpage_calls real calls recorded for the call page's tests
  keeping_world  ended calls with filed recordings and a retention policy
  rows           database rows with defaults
  seaweedfs      a real SeaweedFS on loopback (S3)
  rawhttp        raw HTTP requests aiohttp's client would refuse
  browser        Debian's chromium for the browser tests
  cli            the `verbatim` command as a process
  wav            small PCM WAV files
"""

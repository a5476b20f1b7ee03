"""The runtime: what runs jobs, built on the contract and importing no plugin, task or tool.

Plugin discovery (`registry`), the grid (`grid`, `runner`, `dispatch`, `suites`), one job's stages
(`stages`: load -> split -> descriptors -> fit/predict -> score -> record), how jobs run (`executors/`,
with the built-in `local`/`ray` executor plugin), results on disk (`results`, `claims`), the caches and
identities of data (`dataset_cache`, `fingerprint`, `splits`), provenance and record validation
(`provenance`, `validate`). The CLI and the tools (`tune`, `leaderboard`, `paper`) sit above it.
"""

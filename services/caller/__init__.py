"""The caller role service (see issue: role services). Filled in by umi.service."""

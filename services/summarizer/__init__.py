"""The summarizer role service (see issue: role services). Filled in by umi.service."""

"""ges-bot: the Huawei Cloud GES job center, in Slack."""

__version__ = "0.1.0"

"""Loopback stand-ins for the services ges-bot talks to, for tests and ``ges-bot demo``.

``standin.slack`` imitates the Slack Web API and Socket Mode; ``standin.webhooks`` the group-bot
webhooks of Lark/Feishu, DingTalk, WeCom and Teams Workflows. Stand-ins never reach the network
and never import the bot's runtime; they only answer what a real service would.
"""

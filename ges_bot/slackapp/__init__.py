"""slackapp"""

"""What `HERALD_CHANNELS` names: the channels a user reads beyond their own inbox.

Here every signed-in user follows the shared feed `feed:demo`. A real project returns what
the user may see, e.g. `[f"project:{pk}" for pk in user.projects.values_list("pk", flat=True)]`.
It runs for each page with `{% herald_script %}` and for each token, so keep it cheap.
"""


def channels_for(user):
    return ["feed:demo"]

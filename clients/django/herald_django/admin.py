"""Notifications in the admin: browse and search, never edit.

Rows are delivered when inserted, so changing one afterwards reaches nobody, and deleting
one is retention's job (`herald prune`, or `HERALD_PRUNE_OLDER_THAN`).
"""

from django.contrib import admin

from .models import Notification


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("id", "created_at", "channel", "level", "kind", "title")
    # Filters that need no scan of the table (a filter on `kind` would read every row to
    # list the kinds, and so would a date hierarchy).
    list_filter = ("level", "created_at")
    search_fields = ("=channel", "title", "body")
    readonly_fields = ("id", "channel", "title", "body", "kind", "level", "data", "created_at")
    # The table can be large: no COUNT(*) of all rows on every page.
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

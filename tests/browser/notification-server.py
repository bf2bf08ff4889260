#!/usr/bin/python3
"""A stand-in for the desktop's notification server (org.freedesktop.Notifications), for
push.test.mjs.

On Linux, Chromium shows a web notification by calling this service over the session D-Bus,
and learns of a click from its ActionInvoked signal, as a desktop sends it when the user clicks
the notification. Headless Chromium has no screen to click on, so this plays the desktop: it
prints each notification it is asked to show and each it is asked to close, as one JSON line
on stdout ({"shown": id, "title", "body"} or {"closed": id}), and reading `click <id>` on stdin
it sends ActionInvoked(id, "default"): a click on the notification's body.

Needs Debian's python3-dbus and python3-gi (run it with /usr/bin/python3), and
DBUS_SESSION_BUS_ADDRESS naming the bus to serve on.
"""
import json
import sys

import dbus
import dbus.mainloop.glib
import dbus.service
from gi.repository import GLib

NAME = "org.freedesktop.Notifications"
PATH = "/org/freedesktop/Notifications"


def say(**event):
    print(json.dumps(event), flush=True)


class NotificationServer(dbus.service.Object):
    def __init__(self, bus):
        super().__init__(bus, PATH)
        self.last_id = 0

    # Chromium uses a notification server only if it has both of these.
    @dbus.service.method(NAME, in_signature="", out_signature="as")
    def GetCapabilities(self):
        return ["body", "actions"]

    @dbus.service.method(NAME, in_signature="", out_signature="ssss")
    def GetServerInformation(self):
        return ("herald-tests", "herald", "1.0", "1.2")

    @dbus.service.method(NAME, in_signature="susssasa{sv}i", out_signature="u")
    def Notify(self, app_name, replaces_id, app_icon, summary, body, actions, hints, timeout):
        if replaces_id:
            notification_id = replaces_id
        else:
            self.last_id += 1
            notification_id = self.last_id
        say(shown=int(notification_id), title=str(summary), body=str(body),
            actions=[str(a) for a in actions])
        return notification_id

    @dbus.service.method(NAME, in_signature="u", out_signature="")
    def CloseNotification(self, notification_id):
        say(closed=int(notification_id))
        self.NotificationClosed(notification_id, 3)  # 3: closed by a CloseNotification call

    @dbus.service.signal(NAME, signature="us")
    def ActionInvoked(self, notification_id, action_key):
        pass

    @dbus.service.signal(NAME, signature="uu")
    def NotificationClosed(self, notification_id, reason):
        pass


def main():
    dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
    bus = dbus.SessionBus()
    server = NotificationServer(bus)
    name = dbus.service.BusName(NAME, bus, do_not_queue=True)  # noqa: F841 (held while we run)
    loop = GLib.MainLoop()

    def on_input(source, condition):
        line = sys.stdin.readline()
        if not line:  # the test is done with us
            loop.quit()
            return False
        command, _, argument = line.strip().partition(" ")
        if command == "click":
            server.ActionInvoked(dbus.UInt32(int(argument)), "default")
        return True

    GLib.io_add_watch(sys.stdin, GLib.IO_IN | GLib.IO_HUP, on_input)
    say(ready=True)
    loop.run()


if __name__ == "__main__":
    main()

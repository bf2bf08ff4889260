"""Tells Django the model exists, so other apps' migrations may refer to it.

`managed = False`: it creates nothing. herald's own migrations own the table.
"""

import herald_django.validators
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
    ]

    operations = [
        migrations.CreateModel(
            name='Notification',
            fields=[
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('channel', models.TextField(help_text="user:<pk> for one user's inbox, broadcast for everyone, or a channel that tokens grant (order:17, project:5).", validators=[herald_django.validators.validate_channel])),
                ('title', models.TextField(blank=True, validators=[herald_django.validators.validate_text])),
                ('body', models.TextField(blank=True, default='', validators=[herald_django.validators.validate_text])),
                ('kind', models.TextField(default='notification', validators=[herald_django.validators.validate_kind])),
                ('level', models.TextField(choices=[('info', 'Info'), ('success', 'Success'), ('warning', 'Warning'), ('error', 'Error')], default='info')),
                ('data', models.JSONField(blank=True, default=dict, validators=[herald_django.validators.validate_data])),
                ('created_at', models.DateTimeField()),
            ],
            options={
                'verbose_name': 'herald notification',
                'db_table': 'notifications',
                'ordering': ['-id'],
                'managed': False,
            },
        ),
    ]

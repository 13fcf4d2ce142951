from django import forms

MAX_CHART_DAYS = 90
# Hourly bars past a week are too thin to read; ask for daily bars instead.
MAX_HOURLY_DAYS = 7


class ChartParams(forms.Form):
    days = forms.IntegerField(min_value=1, max_value=MAX_CHART_DAYS, required=False)
    bucket = forms.ChoiceField(choices=[("day", "day"), ("hour", "hour")], required=False)

    def clean(self):
        data = super().clean()
        data["days"] = data.get("days") or 7
        data["bucket"] = data.get("bucket") or "day"
        if data["bucket"] == "hour" and data["days"] > MAX_HOURLY_DAYS:
            raise forms.ValidationError(f"Hourly buckets cover at most {MAX_HOURLY_DAYS} days.")
        return data


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[("approve", "approve"), ("reject", "reject")])
    notes = forms.CharField(required=False, max_length=2000)

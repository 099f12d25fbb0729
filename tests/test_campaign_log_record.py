"""The campaign-log entry has one maker: its column list is the model's, whole."""

from __future__ import annotations

import pytest

from campaigns.models import CampaignLogRecord


def test_the_column_list_is_every_column_of_the_log_but_its_id():
    columns = {field.attname for field in CampaignLogRecord._meta.concrete_fields}
    assert set(CampaignLogRecord.ITEM_COLUMNS) == columns - {"id"}


def test_a_statement_that_leaves_out_a_column_is_refused():
    expressions = {column: "NULL" for column in CampaignLogRecord.ITEM_COLUMNS}
    del expressions["is_test"]
    with pytest.raises(ValueError, match="is_test"):
        CampaignLogRecord.insert_sql(expressions)


def test_the_statement_lists_columns_and_values_in_the_same_order():
    expressions = {column: f"v_{column}" for column in CampaignLogRecord.ITEM_COLUMNS}
    sql = CampaignLogRecord.insert_sql(expressions)
    columns, values = sql.split(" SELECT ")
    listed = columns[columns.index("(") + 1 : columns.rindex(")")].split(", ")
    assert [f"v_{column}" for column in listed] == values.split(", ")
